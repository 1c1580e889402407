//! The `fbuild` binary: parse, run, render errors, map to exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = fbuild::cli::Cli::parse();
    fbuild::logging::init(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            fbuild::error::render(
                &anyhow::Error::new(err).context("cannot start the async runtime"),
                &mut std::io::stderr(),
            );
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(fbuild::cli::run(cli));
    // Don't wait for background tasks (session pumps, signal handlers) to notice the end.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(err) => {
            if fbuild::error::is_broken_pipe(&err) {
                // `fbuild du | head` closing stdout early is not a failure.
                return ExitCode::SUCCESS;
            }
            fbuild::error::render(&err, &mut std::io::stderr());
            fbuild::error::exit_code(&err)
        }
    }
}
