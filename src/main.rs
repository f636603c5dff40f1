use std::process::ExitCode;

// The registry allocates and frees many small values as calls come and go;
// glibc's malloc spent a tenth of the event path consolidating freed chunks,
// and mimalloc holds 1,000,000 channels in about 5% less memory (docs/
// performance.md). The benchmarks use it too (`benches/support/allocator.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    kazoo_channels::cli::main()
}
