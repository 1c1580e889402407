//! Builds from a build graph made in code (LLB) rather than a Dockerfile:
//! an image, a command run on it, a file written next to the command's
//! output, exported as a tarball of the resulting file system.
//!
//! ```sh
//! cargo run --example llb_definition -- BASE_IMAGE DEST.tar
//! # e.g., against the test environment (scripts/testenv.sh up):
//! source .testenv/env
//! cargo run --example llb_definition -- $FBUILD_TEST_BUSYBOX /tmp/rootfs.tar
//! ```
//!
//! The daemon is `$BUILDKIT_HOST`, else the default socket.

// An example program talks to its user directly.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use fbuild::build::{build, BuildRequest, CancellationToken, Frontend};
use fbuild::connect::{connect, ConnectOptions};
use fbuild::llb::{self, Run};
use fbuild::output::parse_output;
use fbuild::progress::{ProgressMode, ProgressWriter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(dest)) = (args.next(), args.next()) else {
        return Err("usage: llb_definition BASE_IMAGE DEST.tar".into());
    };

    // The graph: FROM base, RUN a command, then write a file into its result.
    // States are values: each step returns a new one.
    let state = llb::image(&base)
        .run(Run::shell("mkdir -p /out && uname -m > /out/arch && date -u +%Y > /out/year"))
        .root()
        .file(llb::mkfile("/out/hello.txt", 0o644, "hello from a graph made in Rust\n"));
    let definition = state.marshal()?;
    eprintln!("the graph has {} ops", definition.def.len());

    let request =
        BuildRequest::new(Frontend::Definition(definition)).export(parse_output(&format!("type=tar,dest={dest}"))?);
    let options = ConnectOptions { addr: std::env::var("BUILDKIT_HOST").ok(), ..Default::default() };
    let connection = connect(&options).await?;
    let mut progress = ProgressWriter::new(ProgressMode::Plain, std::io::stderr());
    let report = build(&connection.channel, request, &mut progress, &CancellationToken::new()).await?;
    println!("wrote {dest}: {} steps, {} cached", report.summary.steps, report.summary.cached);
    Ok(())
}
