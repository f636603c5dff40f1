use std::process::ExitCode;

fn main() -> ExitCode {
    kazoo_channels::cli::main()
}
