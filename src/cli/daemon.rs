//! `fbuild daemon start|stop|status` (being written).
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start a local buildkitd and wait until it answers
    Start,
    /// Stop the buildkitd started by `fbuild daemon start`
    Stop,
    /// Tell whether the local buildkitd runs and answers
    Status,
}

pub async fn run(_command: Command, _ctx: &crate::cli::Context) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fbuild daemon` is not implemented yet")
}
