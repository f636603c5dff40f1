//! What the adverts of one instance share with the session and `status`,
//! apart from the task that sends them (`advertise.rs`), so `State` holds it
//! without importing the task.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::kapi::time::gregorian_now_secs;

/// What the adverts of one instance share with the session and `status`.
pub struct Adverts {
    /// This instance's start, Gregorian seconds (`WhApps.kazoo-channels.Startup`).
    pub(super) startup: u64,
    pub(super) last: Mutex<Option<SystemTime>>,
    /// The worker is stopping: the next advert is the last.
    pub(super) stopping: AtomicBool,
    /// The last advert went (or was tried): one only.
    pub(super) farewell: AtomicBool,
    /// The last publish failed: said once until one succeeds.
    pub(super) failing: AtomicBool,
}

impl Default for Adverts {
    fn default() -> Self {
        Self {
            startup: gregorian_now_secs(),
            last: Mutex::new(None),
            stopping: AtomicBool::new(false),
            farewell: AtomicBool::new(false),
            failing: AtomicBool::new(false),
        }
    }
}

impl Adverts {
    /// When the last advert was confirmed, Unix seconds (for `status`).
    pub fn last_unix_secs(&self) -> Option<u64> {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
    }

    /// The worker stops: no more periodic adverts; the session sends the last.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}
