//! tracing setup: readable lines or one JSON object per line.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// `RUST_LOG` wins over the configured level.
pub fn init(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(directives(&log.level)));
    let journal = on_journal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colored(&log.color, std::io::stderr().is_terminal()))
        .with_writer(std::io::stderr);
    let result = if log.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else if journal {
        // journald stamps every line itself.
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// The configured level, with lapin's own lines off unless it names lapin:
/// every bus error reaches the supervisor, which logs it once with what to
/// do, while lapin logs the same at `error`, three lines at every retry (a
/// wrong password filled the log at each backoff step).
fn directives(level: &str) -> String {
    if level.contains("lapin") {
        level.to_owned()
    } else {
        format!("{level},lapin=off")
    }
}

/// Whether stderr is systemd's journal: `$JOURNAL_STREAM` holds the
/// `device:inode` of the stream it gave us (systemd.exec(5)); a child that
/// inherited the variable but writes elsewhere does not match.
fn on_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let stderr = std::io::stderr().as_fd().try_clone_to_owned();
    let Ok(meta) = stderr.and_then(|fd| std::fs::File::from(fd).metadata()) else {
        return false;
    };
    stream.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino()))
}

/// Whether text logs carry ANSI colours: escape codes in a file, journald or
/// `docker logs` are noise, so `auto` colours a terminal only, and not when
/// `NO_COLOR` is set (no-color.org).
fn colored(setting: &str, terminal: bool) -> bool {
    match setting {
        "always" => true,
        "never" => false,
        _ => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::{colored, directives};

    #[test]
    fn lapin_is_quiet_unless_named() {
        assert_eq!(directives("info"), "info,lapin=off");
        assert_eq!(directives("info,lapin=debug"), "info,lapin=debug");
    }

    #[test]
    fn colours_only_where_asked_or_on_a_terminal() {
        assert!(colored("always", false));
        assert!(!colored("never", true));
        assert!(!colored("auto", false), "a file, journald, docker logs");
    }
}
