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
