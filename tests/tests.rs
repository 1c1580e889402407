mod util;

mod testenv;
mod connect_tls;
mod daemon_cmd;
mod rootless;
mod cache_commands;
mod solve;
mod progress;
mod outputs;
mod secrets;
mod fsync;
mod cli_help;
