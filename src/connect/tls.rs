//! TLS for `tcp://` daemons: turning `--tlscacert`, `--tlscert`, `--tlskey` and
//! `--tlsservername` into a rustls client configuration, and turning rustls'
//! failures into a statement of which of those was wrong.
//!
//! The rules follow buildctl: TLS is on as soon as a CA or a client
//! certificate is given; the server name defaults to the address' host. Unlike
//! buildctl, a client certificate without a CA is refused up front (buildctl
//! would verify the daemon against an empty trust store and always fail).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError};

use super::TlsOptions;

/// The TLS settings of one connection, checked and loaded.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) ca_cert: PathBuf,
    pub(crate) client_cert: Option<PathBuf>,
}

/// A problem with the TLS flags or the files they name, found before dialing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    #[error("{flag} was given without --tlscacert; TLS needs the CA certificate that signed the daemon's certificate")]
    MissingCa { flag: &'static str },
    #[error("--tlscert was given without --tlskey")]
    MissingKey,
    #[error("--tlskey was given without --tlscert")]
    MissingCert,
    #[error("TLS applies to tcp:// addresses only; buildkitd serves its unix sockets without TLS")]
    UnixWithTls,
    #[error("cannot read the {flag} file {path}")]
    Read {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {flag} file {path} is not valid PEM")]
    Pem {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the {flag} file {path} holds no PEM certificate")]
    NoCertificate { flag: &'static str, path: PathBuf },
    #[error("the --tlscacert file {path} holds a certificate that is not a valid CA certificate")]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the --tlskey file {path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("the --tlskey key {key} does not go with the --tlscert certificate {cert}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the TLS server name `{name}` is not a valid DNS name or IP address")]
    BadServerName { name: String },
    #[error("cannot set up TLS")]
    Rustls(#[source] rustls::Error),
}

impl TlsOptions {
    /// True when any TLS flag was given.
    pub fn is_enabled(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// Loads the TLS settings for a daemon at `host` (None for a unix socket).
/// Returns `None` when no TLS flag was given (plain h2c).
pub(crate) fn load(opts: &TlsOptions, host: Option<&str>) -> Result<Option<TlsSettings>, TlsConfigError> {
    if !opts.is_enabled() {
        if opts.server_name.is_some() {
            return Err(TlsConfigError::MissingCa { flag: "--tlsservername" });
        }
        return Ok(None);
    }
    let Some(host) = host else {
        return Err(TlsConfigError::UnixWithTls);
    };
    let ca_path = match (&opts.ca_cert, &opts.cert, &opts.key) {
        (Some(ca), _, _) => ca,
        (None, Some(_), _) => return Err(TlsConfigError::MissingCa { flag: "--tlscert" }),
        (None, None, _) => return Err(TlsConfigError::MissingCa { flag: "--tlskey" }),
    };
    let name = opts.server_name.clone().unwrap_or_else(|| host.to_owned());
    let server_name = ServerName::try_from(name.clone()).map_err(|_| TlsConfigError::BadServerName { name })?;

    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates("--tlscacert", ca_path)? {
        roots.add(cert).map_err(|source| TlsConfigError::BadCa { path: ca_path.clone(), source })?;
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Rustls)?
        .with_root_certificates(roots);
    let mut config = match (&opts.cert, &opts.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(TlsConfigError::MissingKey),
        (None, Some(_)) => return Err(TlsConfigError::MissingCert),
        (Some(cert_path), Some(key_path)) => {
            let chain = read_certificates("--tlscert", cert_path)?;
            let key = read_key(key_path)?;
            builder.with_client_auth_cert(chain, key).map_err(|source| TlsConfigError::KeyMismatch {
                cert: cert_path.clone(),
                key: key_path.clone(),
                source,
            })?
        }
    };
    // gRPC servers (grpc-go since 1.67) insist on ALPN `h2`.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(TlsSettings {
        config: Arc::new(config),
        server_name,
        ca_cert: ca_path.clone(),
        client_cert: opts.cert.clone(),
    }))
}

fn read_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    // std::fs here: the error names the path through our own variant.
    std::fs::read(path).map_err(|source| TlsConfigError::Read { flag, path: path.to_owned(), source })
}

fn read_certificates(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read_file(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem { flag, path: path.to_owned(), source })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate { flag, path: path.to_owned() });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read_file("--tlskey", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| match err {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::NoKey { path: path.to_owned() },
        source => TlsConfigError::Pem { flag: "--tlskey", path: path.to_owned(), source },
    })
}

/// Which part of the TLS setup a handshake failure points at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsProblem {
    /// The daemon's certificate does not chain to the CA given with --tlscacert.
    UnknownCa { ca_cert: PathBuf },
    /// The daemon's certificate is not valid for the expected server name.
    WrongName { name: String, presented: Vec<String> },
    /// The daemon's certificate is outside its validity period.
    ServerCertExpired,
    /// The daemon's certificate was rejected for another reason.
    BadServerCert,
    /// The daemon requires mutual TLS and no client certificate was given.
    ClientCertRequired,
    /// The daemon refused the client certificate given with --tlscert.
    ClientCertRefused { client_cert: PathBuf, why: &'static str },
    /// What came back is not TLS: the daemon likely serves plain h2c there.
    NotTls,
    /// Anything else; the rustls error says what.
    Other,
}

impl std::fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsProblem::UnknownCa { ca_cert } => {
                write!(f, "the daemon's certificate is not signed by the CA in --tlscacert ({})", ca_cert.display())
            }
            TlsProblem::WrongName { name, presented } if presented.is_empty() => {
                write!(f, "the daemon's certificate is not valid for the server name `{name}`")
            }
            TlsProblem::WrongName { name, presented } => write!(
                f,
                "the daemon's certificate is not valid for the server name `{name}` (it is valid for {})",
                presented.join(", ")
            ),
            TlsProblem::ServerCertExpired => write!(f, "the daemon's certificate has expired or is not valid yet"),
            TlsProblem::BadServerCert => write!(f, "the daemon's certificate was rejected"),
            TlsProblem::ClientCertRequired => {
                write!(f, "the daemon requires a client certificate (mutual TLS) and none was given")
            }
            TlsProblem::ClientCertRefused { client_cert, why } => {
                write!(f, "the daemon refused the client certificate {} ({why})", client_cert.display())
            }
            TlsProblem::NotTls => {
                write!(f, "the daemon did not answer with TLS; it may serve plain gRPC at this address")
            }
            TlsProblem::Other => write!(f, "the TLS handshake failed"),
        }
    }
}

impl TlsProblem {
    /// What the user can do about it.
    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            TlsProblem::UnknownCa { .. } => {
                "pass the CA certificate that signed the daemon's certificate with --tlscacert".into()
            }
            TlsProblem::WrongName { .. } => {
                "pass the name the daemon's certificate was issued for with --tlsservername".into()
            }
            TlsProblem::ServerCertExpired => "renew the daemon's certificate (or check this machine's clock)".into(),
            TlsProblem::ClientCertRequired => {
                "pass a client certificate and key signed by the daemon's CA with --tlscert and --tlskey".into()
            }
            TlsProblem::ClientCertRefused { .. } => {
                "the daemon accepts client certificates signed by the CA it was started with (its --tlscacert)".into()
            }
            TlsProblem::NotTls => "if the daemon serves plain gRPC, drop --tlscacert, --tlscert and --tlskey".into(),
            TlsProblem::BadServerCert | TlsProblem::Other => return None,
        })
    }
}

/// Classifies a handshake failure. `tls` is what we sent: which CA we trust,
/// and whether we offered a client certificate.
pub(crate) fn classify(err: &rustls::Error, tls: &TlsSettings) -> TlsProblem {
    match err {
        rustls::Error::InvalidCertificate(cert_err) => match cert_err {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsProblem::UnknownCa { ca_cert: tls.ca_cert.clone() }
            }
            CertificateError::NotValidForName => {
                TlsProblem::WrongName { name: server_name_text(&tls.server_name), presented: Vec::new() }
            }
            CertificateError::NotValidForNameContext { expected, presented } => TlsProblem::WrongName {
                name: server_name_text(expected),
                presented: presented.iter().map(|name| presented_name(name)).collect(),
            },
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsProblem::ServerCertExpired,
            _ => TlsProblem::BadServerCert,
        },
        // The daemon's verdicts on our certificate come back as alerts. Go's
        // TLS server sends `certificate_required` (TLS 1.3) or `bad_certificate`
        // (TLS 1.2) when none was sent, `unknown_ca` when it doesn't trust the
        // issuer, `certificate_expired` when it has expired.
        rustls::Error::AlertReceived(alert) => {
            let client_cert_alert = matches!(
                alert,
                AlertDescription::CertificateRequired
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnknownCA
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateRevoked
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::AccessDenied
            );
            match (&tls.client_cert, client_cert_alert) {
                (None, true) => TlsProblem::ClientCertRequired,
                (Some(client_cert), true) => {
                    let why = match alert {
                        AlertDescription::UnknownCA => "it is not signed by a CA the daemon trusts",
                        AlertDescription::CertificateExpired => "it has expired",
                        AlertDescription::CertificateRevoked => "it was revoked",
                        AlertDescription::CertificateRequired => "it was not accepted",
                        _ => "the daemon could not verify it",
                    };
                    TlsProblem::ClientCertRefused { client_cert: client_cert.clone(), why }
                }
                (_, false) => TlsProblem::Other,
            }
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => TlsProblem::NotTls,
        _ => TlsProblem::Other,
    }
}

/// rustls presents names as `DnsName("x")` / `IpAddress(1.2.3.4)`; people read `x`.
fn presented_name(name: &str) -> String {
    for prefix in ["DnsName(\"", "IpAddress("] {
        if let Some(inner) = name.strip_prefix(prefix) {
            return inner.trim_end_matches(')').trim_end_matches('"').to_owned();
        }
    }
    name.to_owned()
}

fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(client_cert: Option<&str>) -> TlsSettings {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        TlsSettings {
            config: Arc::new(config),
            server_name: ServerName::try_from("127.0.0.1").unwrap(),
            ca_cert: "/certs/ca.pem".into(),
            client_cert: client_cert.map(PathBuf::from),
        }
    }

    #[test]
    fn unknown_issuer_blames_the_ca() {
        let err = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let problem = classify(&err, &settings(None));
        assert_eq!(problem, TlsProblem::UnknownCa { ca_cert: "/certs/ca.pem".into() });
        assert!(problem.to_string().contains("--tlscacert (/certs/ca.pem)"));
    }

    #[test]
    fn wrong_name_names_both_sides() {
        let err = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("build.example").unwrap(),
            presented: vec!["DnsName(\"localhost\")".into()],
        });
        let problem = classify(&err, &settings(None));
        let text = problem.to_string();
        assert!(text.contains("`build.example`"), "{text}");
        assert!(text.contains("(it is valid for localhost)"), "{text}");
        assert!(problem.hint().unwrap().contains("--tlsservername"));

        let bare = classify(&rustls::Error::InvalidCertificate(CertificateError::NotValidForName), &settings(None));
        assert_eq!(bare, TlsProblem::WrongName { name: "127.0.0.1".into(), presented: vec![] });
    }

    #[test]
    fn alerts_blame_the_client_certificate() {
        let required = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert_eq!(classify(&required, &settings(None)), TlsProblem::ClientCertRequired);
        // TLS 1.2 servers say bad_certificate when none was sent.
        let bad = rustls::Error::AlertReceived(AlertDescription::BadCertificate);
        assert_eq!(classify(&bad, &settings(None)), TlsProblem::ClientCertRequired);

        let unknown_ca = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        let problem = classify(&unknown_ca, &settings(Some("/certs/client.pem")));
        assert!(
            matches!(problem, TlsProblem::ClientCertRefused { ref client_cert, .. } if client_cert == Path::new("/certs/client.pem"))
        );
        assert!(problem.to_string().contains("client certificate /certs/client.pem"));
        assert!(problem.to_string().contains("not signed by a CA the daemon trusts"));
        assert!(problem.hint().unwrap().contains("--tlscacert"));
    }

    #[test]
    fn other_failures_stay_generic() {
        let alert = rustls::Error::AlertReceived(AlertDescription::ProtocolVersion);
        assert_eq!(classify(&alert, &settings(None)), TlsProblem::Other);
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(classify(&expired, &settings(None)), TlsProblem::ServerCertExpired);
        let junk = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert_eq!(classify(&junk, &settings(None)), TlsProblem::NotTls);
    }

    #[test]
    fn flags_are_checked_before_files() {
        let load_with = |opts: TlsOptions, host| load(&opts, host).map(|s| s.is_some());
        assert!(matches!(load_with(TlsOptions::default(), Some("h")), Ok(false)));
        let only_name = TlsOptions { server_name: Some("x".into()), ..Default::default() };
        assert!(matches!(load_with(only_name, Some("h")), Err(TlsConfigError::MissingCa { flag: "--tlsservername" })));
        let only_cert = TlsOptions { cert: Some("/c".into()), key: Some("/k".into()), ..Default::default() };
        assert!(matches!(load_with(only_cert, Some("h")), Err(TlsConfigError::MissingCa { flag: "--tlscert" })));
        let ca = TlsOptions { ca_cert: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        assert!(matches!(load_with(ca.clone(), None), Err(TlsConfigError::UnixWithTls)));
        match load(&ca, Some("h")) {
            Err(err @ TlsConfigError::Read { .. }) => {
                assert_eq!(err.to_string(), "cannot read the --tlscacert file /nonexistent/ca.pem")
            }
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn files_without_pem_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let opts = TlsOptions { ca_cert: Some(junk.clone()), ..Default::default() };
        let err = load(&opts, Some("127.0.0.1")).unwrap_err();
        assert!(matches!(err, TlsConfigError::NoCertificate { flag: "--tlscacert", .. }), "{err:?}");
        assert!(err.to_string().contains(&junk.display().to_string()));
    }
}
