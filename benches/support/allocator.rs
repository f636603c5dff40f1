//! The worker binary's allocator (see `src/main.rs`), so that the benchmarks
//! measure what ships.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
