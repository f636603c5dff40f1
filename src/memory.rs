//! Giving memory back. A snapshot or a large reply allocates and frees
//! hundreds of megabytes in a burst; mimalloc (the binary's allocator) keeps
//! freed pages for reuse unless asked, and an operator watching the process
//! would see it grow after every warm-up it served.

/// Returns the freed pages of every thread's heap to the system. Harmless
/// (and nearly free) where mimalloc is not the allocator, as in the tests.
pub fn release() {
    // SAFETY: `mi_collect` takes no pointers; any thread may call it at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// The process's resident set in bytes (`VmRSS` of `/proc/self/status`, as
/// the warm-up benchmark reads it); 0 where it cannot be read.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_resident_set_is_read() {
        assert!(super::resident_bytes() > 1024 * 1024);
    }
}
