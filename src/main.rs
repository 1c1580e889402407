//! The `fbuild` binary: the command line is one client of the library
//! (see `fbuild::cli`).

fn main() -> std::process::ExitCode {
    fbuild::cli::main()
}
