//! fbuild: a native BuildKit client.
//!
//! The modules follow the data flow of a build (see `docs/ARCHITECTURE.md`):
//! the CLI turns flags into a solve request, [`connect`] opens a channel to
//! buildkitd, [`control`] wraps the Control service, [`session`] serves the
//! daemon's callbacks (file sync, outputs, auth, secrets, SSH), and
//! [`progress`] renders the daemon's status stream.

pub mod cli;
pub mod connect;
pub mod control;
pub mod daemon;
pub mod error;
pub mod fsync;
pub mod gateway;
pub mod llb;
pub mod logging;
pub mod output;
pub mod printer;
pub mod progress;
pub mod proto;
pub mod services;
pub mod session;
pub mod solve;
pub mod units;
