//! What the packages ship that is made from the program itself, written by
//! `scripts/package` through the hidden `kazoo-channels package-assets --out
//! DIR`: the man pages and shell completions from the CLI definition, and
//! the commented `config.toml` from the built-in defaults. Generated at
//! package time, never committed, so none of them can fall behind the code.

use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

const NAME: &str = "kazoo-channels";

/// The completion file of each shell, under the name its loader looks for.
const COMPLETIONS: &[(Shell, &str)] = &[
    (Shell::Bash, "completions/kazoo-channels"),
    (Shell::Zsh, "completions/_kazoo-channels"),
    (Shell::Fish, "completions/kazoo-channels.fish"),
];

/// Writes `man/*.1`, `completions/*` and `config.toml` under `out`; returns
/// the files written, relative to `out`.
pub fn write(out: &Path) -> io::Result<Vec<String>> {
    let mut written = Vec::new();
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    clap_mangen::generate_to(Cli::command(), &man)?;
    for entry in std::fs::read_dir(&man)? {
        written.push(format!("man/{}", entry?.file_name().to_string_lossy()));
    }
    std::fs::create_dir_all(out.join("completions"))?;
    for (shell, file) in COMPLETIONS {
        let mut f = std::fs::File::create(out.join(file))?;
        clap_complete::generate(*shell, &mut Cli::command(), NAME, &mut f);
        written.push((*file).to_owned());
    }
    let config = crate::default_config::render().map_err(io::Error::other)?;
    std::fs::write(out.join("config.toml"), config)?;
    written.push("config.toml".to_owned());
    written.sort();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_completions_and_the_config_are_written() {
        let out = std::env::temp_dir().join(format!("kc-assets-{}", uuid::Uuid::new_v4()));
        let files = write(&out).unwrap();
        for expected in [
            "man/kazoo-channels.1",
            "man/kazoo-channels-run.1",
            "man/kazoo-channels-check-config.1",
            "man/kazoo-channels-query.1",
            "completions/kazoo-channels",
            "completions/_kazoo-channels",
            "completions/kazoo-channels.fish",
            "config.toml",
        ] {
            assert!(files.iter().any(|f| f == expected), "{expected}: {files:?}");
        }
        assert!(
            !files.iter().any(|f| f.contains("package-assets")),
            "the hidden subcommand has no page: {files:?}"
        );
        let page = std::fs::read_to_string(out.join("man/kazoo-channels.1")).unwrap();
        assert!(page.contains(".TH kazoo-channels 1"), "{page}");
        assert!(page.contains("check\\-config"), "{page}");
        let bash = std::fs::read_to_string(out.join("completions/kazoo-channels")).unwrap();
        assert!(
            bash.contains("check-config") && bash.contains("complete -F"),
            "{bash}"
        );
        std::fs::remove_dir_all(out).unwrap();
    }
}
