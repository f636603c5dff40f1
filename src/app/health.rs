//! The liveness file, for container health checks: the worker opens no HTTP
//! port, and a probe that opened an AMQP connection every few seconds would test
//! the broker more than this worker. Instead, while its bus session is up and its
//! registry is warm, the worker rewrites `health.file` every [`REFRESH`];
//! `kazoo-channels health` calls it healthy while the file is younger than a
//! maximum age. A worker that lost its session removes the file; one that died
//! or hung stops refreshing it, and the file goes stale.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::bus_status::BusStatus;
use super::state::State;

/// How often a live worker rewrites the file.
pub const REFRESH: Duration = Duration::from_secs(5);
/// What `kazoo-channels health` accepts by default: three refreshes missed.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(15);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Unhealthy {
    #[error("health.file is not set (KAZOO_CHANNELS__HEALTH__FILE)")]
    NotConfigured,
    #[error("no liveness file at {0}: the bus session is down or the registry not warm yet")]
    Missing(String),
    #[error("the liveness file was last refreshed {}s ago (more than {}s): the worker is hung or gone", .age.as_secs(), .max_age.as_secs())]
    Stale { age: Duration, max_age: Duration },
}

/// Keeps the file in step with the session until `shutdown`, then removes it.
/// Does nothing when `health.file` is empty.
pub fn spawn(
    state: &Arc<State>,
    mut status: watch::Receiver<BusStatus>,
    shutdown: &CancellationToken,
) {
    if state.settings.health.file.is_empty() {
        return;
    }
    let path = PathBuf::from(&state.settings.health.file);
    let state = state.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        let mut failing = false;
        loop {
            let live = *status.borrow() == BusStatus::Connected && state.is_warm();
            let written = if live {
                let line = format!(
                    "{} channels={}\n",
                    state.identity.node,
                    state.registry().len()
                );
                write(&path, &line)
            } else {
                remove(&path)
            };
            // Said once per failing spell, not every refresh.
            match written {
                Err(error) if !failing => {
                    warn!(path = %path.display(), %error, "cannot update the liveness file");
                    failing = true;
                }
                Ok(()) => failing = false,
                Err(_) => {}
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
                changed = status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = remove(&path);
    });
}

/// Replaces the file in one step, so a probe never reads half a line.
fn write(path: &Path, line: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, line)?;
    std::fs::rename(&tmp, path)
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What the probe decides from the file's modification time.
pub fn verdict(
    modified: SystemTime,
    now: SystemTime,
    max_age: Duration,
) -> Result<Duration, Unhealthy> {
    // A clock step back makes the file look new: that is still a refresh.
    let age = now.duration_since(modified).unwrap_or_default();
    if age > max_age {
        return Err(Unhealthy::Stale { age, max_age });
    }
    Ok(age)
}

/// The probe: the file's line when it is fresh enough.
pub fn check(file: &str, max_age: Duration) -> Result<(String, Duration), Unhealthy> {
    if file.is_empty() {
        return Err(Unhealthy::NotConfigured);
    }
    let missing = || Unhealthy::Missing(file.to_owned());
    let modified = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .map_err(|_| missing())?;
    let age = verdict(modified, SystemTime::now(), max_age)?;
    let line = std::fs::read_to_string(file).map_err(|_| missing())?;
    Ok((line.trim().to_owned(), age))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = DEFAULT_MAX_AGE;

    #[test]
    fn a_fresh_file_is_healthy_and_a_stale_one_is_not() {
        let now = SystemTime::now();
        assert_eq!(
            verdict(now - Duration::from_secs(4), now, MAX),
            Ok(Duration::from_secs(4))
        );
        assert_eq!(
            verdict(now - Duration::from_secs(16), now, MAX),
            Err(Unhealthy::Stale {
                age: Duration::from_secs(16),
                max_age: MAX
            })
        );
        // A file from the future (clock stepped back) counts as just refreshed.
        assert_eq!(
            verdict(now + Duration::from_secs(60), now, MAX),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn the_probe_names_what_is_wrong() {
        assert_eq!(check("", MAX), Err(Unhealthy::NotConfigured));
        let dir = std::env::temp_dir().join(format!("kc-health-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("alive");
        let name = file.to_str().unwrap().to_owned();
        assert_eq!(check(&name, MAX), Err(Unhealthy::Missing(name.clone())));
        write(&file, "node@host channels=3\n").unwrap();
        let (line, age) = check(&name, MAX).unwrap();
        assert_eq!(line, "node@host channels=3");
        assert!(age < MAX);
        remove(&file).unwrap();
        remove(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
