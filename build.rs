//! Embeds every `schemas/*.json` and `amqp-bindings/*.json` into the binary, so a
//! file added to either folder is compiled in without touching code.

use std::fmt::Write as _;
use std::path::Path;

fn embed(dir: &str, out: &str) {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir");
    // The folder itself, so that an added file reruns this script.
    println!(
        "cargo:rerun-if-changed={}",
        Path::new(&root).join(dir).display()
    );
    let mut files: Vec<_> = std::fs::read_dir(Path::new(&root).join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut code = String::from("&[\n");
    for p in files {
        println!("cargo:rerun-if-changed={}", p.display());
        let stem = p.file_stem().expect("file name").to_string_lossy();
        writeln!(
            code,
            "    ({stem:?}, include_str!({:?})),",
            p.display().to_string()
        )
        .expect("write");
    }
    code.push(']');
    let out_dir = std::env::var("OUT_DIR").expect("out dir");
    std::fs::write(Path::new(&out_dir).join(out), code).expect("write embedded list");
}

fn main() {
    embed("schemas", "schemas.rs");
    embed("amqp-bindings", "amqp_bindings.rs");
}
