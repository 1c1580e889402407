//! Placeholder: the connection module is being written (addresses, TLS, default sockets).
use tonic::transport::Channel;

#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca_cert: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub addr: Option<String>,
    pub tls: TlsOptions,
}

pub async fn connect(opts: &ConnectOptions) -> anyhow::Result<Channel> {
    let addr = opts.addr.clone().unwrap_or_else(|| "unix:///run/buildkit/buildkitd.sock".into());
    anyhow::bail!("connection to {addr} not implemented yet")
}
