//! Builds a Dockerfile project into an OCI image tarball with fbuild's
//! library, showing buildctl-style progress on stderr and printing the image
//! digest on stdout.
//!
//! ```sh
//! cargo run --example build_oci_tarball -- CONTEXT DEST.tar [NAME=VALUE]...
//! # e.g., against the test environment (scripts/testenv.sh up):
//! source .testenv/env
//! cargo run --example build_oci_tarball -- examples/python-service /tmp/app.tar BASE=$FBUILD_TEST_BUSYBOX
//! ```
//!
//! `NAME=VALUE` arguments are build arguments. The daemon is `$BUILDKIT_HOST`,
//! else the default socket. Ctrl-C cancels the build on the daemon.

// An example program talks to its user directly.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use fbuild::build::{build, BuildRequest, CancellationToken};
use fbuild::connect::{connect, ConnectOptions};
use fbuild::output::parse_output;
use fbuild::progress::{ProgressMode, ProgressWriter};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The error and its causes, one per line.
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(context), Some(dest)) = (args.next(), args.next()) else {
        return Err("usage: build_oci_tarball CONTEXT DEST.tar [NAME=VALUE]...".into());
    };

    // The request: the project's Dockerfile, built by the daemon's Dockerfile
    // frontend, exported as an OCI layout tarball written to DEST.
    let mut request = BuildRequest::dockerfile(&context).export(parse_output(&format!("type=oci,dest={dest}"))?);
    for arg in args {
        let (name, value) = arg.split_once('=').ok_or_else(|| format!("{arg:?} is not NAME=VALUE"))?;
        request = request.attr(format!("build-arg:{name}"), value);
    }

    let options = ConnectOptions { addr: std::env::var("BUILDKIT_HOST").ok(), ..Default::default() };
    let connection = connect(&options).await?;

    let cancel = CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        }
    });
    let mut progress = ProgressWriter::new(ProgressMode::Plain, std::io::stderr());
    let report = build(&connection.channel, request, &mut progress, &cancel).await?;

    eprintln!("wrote {dest}: {} steps, {} cached", report.summary.steps, report.summary.cached);
    println!("{}", report.image_digest().unwrap_or_default());
    Ok(())
}
