mod util;

mod cache_commands;
mod cli_help;
mod connect_tls;
mod daemon_cmd;
mod flags;
mod fsync;
mod gateway;
mod library;
mod load;
mod outputs;
mod progress;
mod rootless;
mod secrets;
mod solve;
mod testenv;
mod trust;
