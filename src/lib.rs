//! fbuild: a native BuildKit client, as a library.
//!
//! A build is plain data, a [`build::BuildRequest`], run on a connection to
//! buildkitd with [`build::build`]: progress goes to a [`build::ProgressSink`]
//! of the caller's choosing, a cancellation token stops it, and it ends in a
//! [`build::BuildReport`] or a typed [`build::BuildError`].
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use fbuild::build::{build, BuildRequest, CancellationToken, NoProgress};
//! use fbuild::connect::{connect, ConnectOptions};
//!
//! let connection = connect(&ConnectOptions::default()).await?;
//! let request = BuildRequest::dockerfile("examples/python-service").attr("target", "deps");
//! let report = build(&connection.channel, request, &mut NoProgress, &CancellationToken::new()).await?;
//! println!("{} steps, {} cached", report.summary.steps, report.summary.cached);
//! # Ok(()) }
//! ```
//!
//! The modules follow the data flow of a build (see `docs/ARCHITECTURE.md`):
//! [`connect`] opens a channel to buildkitd, [`build`] runs a request on it
//! (sessions serving files, outputs, credentials, secrets and SSH; the solve;
//! the status stream), [`progress`] renders that stream for people,
//! [`output`] and [`cache`] describe where results and build cache go, and
//! [`control`] wraps the daemon's other calls (disk usage, prune, workers).

pub mod build;
pub mod cache;
pub mod connect;
pub mod control;
pub mod dockerfile;
pub mod gateway;
pub mod history;
pub mod imagetools;
pub mod llb;
pub mod output;
pub mod pool;
pub mod progress;
pub mod proto;
pub mod record;
pub mod services;

pub(crate) mod bake;
pub(crate) mod error;
pub(crate) mod fsync;
pub(crate) mod gojson;
pub(crate) mod gopath;
pub(crate) mod gostrconv;
pub(crate) mod logging;
pub(crate) mod printer;
pub(crate) mod registry;
pub(crate) mod session;
pub(crate) mod units;

#[cfg(test)]
mod fuzz;

/// The `fbuild` command line: public only for the binary (`src/main.rs`).
#[doc(hidden)]
pub mod cli;
