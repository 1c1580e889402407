//! Diagnostic logs (tracing) to stderr, filtered by `RUST_LOG`; `-v` turns on
//! fbuild's debug logs. Logs never carry secret values: the secrets service
//! logs ids only.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: bool) {
    let default = if verbose { "fbuild=debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a terminal (and not with NO_COLOR): CI logs and pipes
    // get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && crate::progress::color_enabled();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
}
