//! `fbuild du` (being written).
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args, _ctx: &crate::cli::Context) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fbuild du` is not implemented yet")
}
