//! Every relative link of the documentation resolves: README.md and the other
//! Markdown files at the root, `docs/` and `schemas/`. A link names a file or
//! folder of the repository, and its `#anchor`, if any, a heading of the
//! Markdown file it points to, by GitHub's rule (lower-case; spaces become
//! `-`; punctuation other than `-` and `_` dropped; a repeated heading gets
//! `-1`, `-2`…). Links with a scheme (`https:`, `mailto:`) are not followed.
//! No broker, no dependency: a small parser of the Markdown these files use
//! (inline links and images, reference definitions, ATX headings, code spans
//! and fenced blocks, which hold no links).

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The folders whose `*.md` files are checked, from the repository's root.
const FOLDERS: [&str; 3] = [".", "docs", "schemas"];

/// A link as written, and the line it is on (from 1).
#[derive(Debug, PartialEq, Eq)]
struct Link {
    line: usize,
    target: String,
}

/// The lines outside fenced code blocks, numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// The line with its code spans blanked out (a span holds no link).
fn without_code(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        let ticks = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let fence = &rest[start..start + ticks];
        let after = &rest[start + ticks..];
        match after.find(fence) {
            Some(end) => {
                out.push_str(&rest[..start]);
                out.push(' ');
                rest = &after[end + ticks..];
            }
            None => {
                out.push_str(&rest[..start + ticks]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The destination of an inline link that starts just after its `](`: up to
/// the `)` that closes it (parentheses may nest), without a title.
fn destination(s: &str) -> Option<&str> {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('<') {
        return inner.find('>').map(|end| &inner[..end]);
    }
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return s[..i].split_whitespace().next(),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Every link of a Markdown text: inline ones (`[text](target)`, images too)
/// and reference definitions (`[label]: target`).
fn links(text: &str) -> Vec<Link> {
    let mut out = Vec::new();
    for (line, raw) in prose_lines(text) {
        let prose = without_code(raw);
        let trimmed = prose.trim_start();
        if trimmed.starts_with('[')
            && let Some(end) = trimmed.find("]:")
        {
            if let Some(target) = trimmed[end + 2..].split_whitespace().next() {
                out.push(Link {
                    line,
                    target: target.trim_matches(['<', '>']).to_string(),
                });
            }
            continue;
        }
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(target) = destination(rest) {
                out.push(Link {
                    line,
                    target: target.to_string(),
                });
            }
        }
    }
    out
}

/// A heading's anchor by GitHub's rule, before de-duplication.
fn slug(heading: &str) -> String {
    // A link in a heading shows its text only.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(at) = rest.find("](") {
        text.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        rest = match after.find(')') {
            Some(end) => &after[end + 1..],
            None => "",
        };
    }
    text.push_str(rest);
    text.trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every anchor a Markdown text's headings make.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.len() - line.trim_start_matches('#').len();
        let rest = &line[hashes..];
        if !(1..=6).contains(&hashes) || !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        let base = slug(rest.trim().trim_end_matches('#'));
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// `https:`, `mailto:`…: not a path of the repository.
fn has_scheme(target: &str) -> bool {
    match target.find(':') {
        Some(i) => {
            let scheme = &target[..i];
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        }
        None => false,
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system; `None` when it
/// climbs out of the repository.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What is wrong with one link of `file` (a path from `root`), if anything.
fn check(root: &Path, file: &Path, target: &str) -> Option<String> {
    if has_scheme(target) {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let linked = if path.is_empty() {
        file.to_path_buf()
    } else {
        let here = file.parent().unwrap_or(Path::new(""));
        match normalise(&here.join(path)) {
            Some(p) => p,
            None => return Some("leaves the repository".into()),
        }
    };
    let full = root.join(&linked);
    if !full.exists() {
        return Some(format!("no file {}", linked.display()));
    }
    let anchor = anchor?;
    if full.extension().is_none_or(|e| e != "md") {
        return Some(format!("#{anchor} into {}, not Markdown", linked.display()));
    }
    let text = fs::read_to_string(&full).expect("a Markdown file is UTF-8");
    if anchors(&text).iter().any(|a| a == anchor) {
        None
    } else {
        Some(format!("no heading #{anchor} in {}", linked.display()))
    }
}

/// Every broken link of the files, one line each: `file:line: target: why`.
fn broken(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for file in files {
        let text = fs::read_to_string(root.join(file)).expect("a Markdown file is UTF-8");
        for link in links(&text) {
            if let Some(why) = check(root, file, &link.target) {
                out.push(format!(
                    "{}:{}: {}: {why}",
                    file.display(),
                    link.line,
                    link.target
                ));
            }
        }
    }
    out
}

fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in FOLDERS {
        let Ok(entries) = fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable folder").path();
            if path.extension().is_some_and(|e| e == "md") {
                let name = path.file_name().expect("a file name");
                files.push(normalise(&Path::new(folder).join(name)).expect("inside"));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_relative_link_of_the_documentation_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = markdown_files(root);
    assert!(
        files.iter().any(|f| f == Path::new("README.md")),
        "README.md not found among {files:?}"
    );
    let links: usize = files
        .iter()
        .map(|f| links(&fs::read_to_string(root.join(f)).expect("UTF-8")).len())
        .sum();
    assert!(
        links > 0,
        "no link found in {files:?}: the parser is broken"
    );
    let broken = broken(root, &files);
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn anchors_follow_githubs_rule() {
    let text = "# kazoo-channels\n\
                ### Kazoo 5.1+: the `channel` dialect\n\
                ## A million channels: warm-up, memory, intake while queried\n\
                ## Faults\n## Faults\n\
                ```\n# not a heading\n```\n\
                #not a heading either\n\
                ## Install as a service (`.deb`, `.rpm`)\n\
                ## Zürich — and [links](other.md#x)\n";
    assert_eq!(
        anchors(text),
        [
            "kazoo-channels",
            "kazoo-51-the-channel-dialect",
            "a-million-channels-warm-up-memory-intake-while-queried",
            "faults",
            "faults-1",
            "install-as-a-service-deb-rpm",
            "zürich--and-links",
        ]
    );
}

#[test]
fn links_are_found_outside_code_only() {
    let text = "See [ops](docs/operators.md#faults) and ![d](img.png \"title\").\n\
                `[not](a-link.md)` and [f(x)](dir/f(x).md)\n\
                ```sh\n[inside](a-fence.md)\n```\n\
                [ref]: schemas/README.md\n\
                [web](https://example.com/a_(b)) <https://example.com>\n";
    let found = links(text);
    let found: Vec<(usize, &str)> = found.iter().map(|l| (l.line, l.target.as_str())).collect();
    assert_eq!(
        found,
        [
            (1, "docs/operators.md#faults"),
            (1, "img.png"),
            (2, "dir/f(x).md"),
            (6, "schemas/README.md"),
            (7, "https://example.com/a_(b)"),
        ]
    );
}

#[test]
fn a_broken_link_is_reported_with_its_place() {
    let root = std::env::temp_dir().join(format!("kc-docs-{}", std::process::id()));
    fs::create_dir_all(root.join("docs")).expect("temp dir");
    fs::write(
        root.join("README.md"),
        "# Top\n\n[ok](docs/a.md#b-c) [file](docs/missing.md)\n[anchor](docs/a.md#nope) [self](#top)\n",
    )
    .expect("write");
    fs::write(
        root.join("docs/a.md"),
        "# A\n## B, c\n[up](../README.md#top) [out](../../x.md)\n",
    )
    .expect("write");
    let files = [PathBuf::from("README.md"), PathBuf::from("docs/a.md")];
    let found = broken(&root, &files);
    fs::remove_dir_all(&root).expect("clean up");
    assert_eq!(
        found,
        [
            "README.md:3: docs/missing.md: no file docs/missing.md",
            "README.md:4: docs/a.md#nope: no heading #nope in docs/a.md",
            "docs/a.md:3: ../../x.md: leaves the repository",
        ]
    );
}
