//! Mutual TLS against a real buildkitd: a second daemon, started here with
//! certificates made here, and fbuild connecting with the right ones and
//! failing clearly with a wrong CA, no client certificate, a client
//! certificate from another CA, and a wrong server name.
//!
//! The second daemon is a [`PrivateDaemon`] beside the test environment's, on
//! its own TCP port and no unix socket.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fbuild::connect::{self, ConnectError, ConnectOptions, TlsOptions, TlsProblem};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::util::{self, PrivateDaemon};

/// A CA and what it signed, written as PEM files into a folder.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn write(dir: &Path, name: &str, pem: String) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate.
fn make_pki(dir: &Path, label: &str) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("fbuild test CA {label}"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    server.distinguished_name.push(DnType::CommonName, "buildkitd");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name.push(DnType::CommonName, "fbuild test client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();

    Pki {
        ca: write(dir, "ca.pem", ca_cert.pem()),
        server_cert: write(dir, "server.pem", server_cert.pem()),
        server_key: write(dir, "server-key.pem", server_key.serialize_pem()),
        client_cert: write(dir, "client.pem", client_cert.pem()),
        client_key: write(dir, "client-key.pem", client_key.serialize_pem()),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a buildkitd with mutual TLS on a loopback port.
fn start_tls_daemon(pki: &Pki, port: u16) -> PrivateDaemon {
    PrivateDaemon::spawn_at(
        format!("tcp://127.0.0.1:{port}"),
        [
            OsStr::new("--tlscacert"),
            pki.ca.as_os_str(),
            OsStr::new("--tlscert"),
            pki.server_cert.as_os_str(),
            OsStr::new("--tlskey"),
            pki.server_key.as_os_str(),
        ],
    )
}

fn options(port: u16, ca: &Path, client: Option<(&Path, &Path)>, server_name: Option<&str>) -> ConnectOptions {
    ConnectOptions {
        addr: Some(format!("tcp://127.0.0.1:{port}")),
        tls: TlsOptions {
            ca_cert: Some(ca.to_owned()),
            cert: client.map(|(cert, _)| cert.to_owned()),
            key: client.map(|(_, key)| key.to_owned()),
            server_name: server_name.map(str::to_owned),
        },
    }
}

/// Waits until the daemon answers with the right certificates.
fn wait_until_up(rt: &tokio::runtime::Runtime, daemon: &mut PrivateDaemon, opts: &ConnectOptions) {
    daemon.wait_until_up(|_| {
        rt.block_on(connect::open(opts, Duration::from_secs(2))).map(drop).map_err(|err| format!("{err:#?}"))
    });
}

/// The error of a connection the daemon (or the client) refuses.
fn refused(rt: &tokio::runtime::Runtime, opts: &ConnectOptions) -> ConnectError {
    rt.block_on(connect::open(opts, connect::CONNECT_TIMEOUT)).expect_err("the connection is refused")
}

/// The error as the CLI prints it.
fn rendered(err: ConnectError) -> String {
    fbuild::cli::render_connect_error(err)
}

fn tls_problem(err: &ConnectError) -> Option<&TlsProblem> {
    err.tls_problem()
}

#[test]
fn mutual_tls_right_and_wrong_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(&tmp.path().join("pki"), "A");
    let other = make_pki(&tmp.path().join("other-pki"), "B");
    let port = free_port();
    let mut daemon = start_tls_daemon(&pki, port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Some((pki.client_cert.as_path(), pki.client_key.as_path()));

    // The right certificates: the daemon answers, through the library...
    let good = options(port, &pki.ca, client, None);
    wait_until_up(&rt, &mut daemon, &good);
    let conn = rt.block_on(connect::open(&good, connect::CONNECT_TIMEOUT)).unwrap();
    let version = conn.info.buildkit_version.unwrap_or_default();
    assert!(version.version.starts_with('v'), "unexpected version {version:?}");
    // ... and a Control call on the channel works.
    let workers = rt.block_on(async {
        let mut control = fbuild::proto::moby::buildkit::v1::control_client::ControlClient::new(conn.channel.clone());
        control.list_workers(fbuild::proto::moby::buildkit::v1::ListWorkersRequest::default()).await
    });
    assert!(!workers.unwrap().into_inner().record.is_empty(), "the TLS daemon lists no worker");
    // A CA that did not sign the daemon's certificate.
    let err = refused(&rt, &options(port, &other.ca, client, None));
    assert!(matches!(tls_problem(&err), Some(TlsProblem::UnknownCa { .. })), "{err:?}");
    let text = rendered(err);
    assert!(text.contains("not signed by the CA in --tlscacert"), "{text}");
    assert!(text.contains(&other.ca.display().to_string()), "{text}");

    // No client certificate: the daemon requires one.
    let err = refused(&rt, &options(port, &pki.ca, None, None));
    assert!(matches!(tls_problem(&err), Some(TlsProblem::ClientCertRequired)), "{err:?}");
    let text = rendered(err);
    assert!(text.contains("requires a client certificate"), "{text}");
    assert!(text.contains("--tlscert"), "{text}");

    // A client certificate from a CA the daemon does not trust.
    let foreign = Some((other.client_cert.as_path(), other.client_key.as_path()));
    let err = refused(&rt, &options(port, &pki.ca, foreign, None));
    assert!(matches!(tls_problem(&err), Some(TlsProblem::ClientCertRefused { .. })), "{err:?}");
    let text = rendered(err);
    assert!(text.contains(&format!("refused the client certificate {}", other.client_cert.display())), "{text}");

    // A server name the certificate is not valid for.
    let named = options(port, &pki.ca, client, Some("build.example"));
    let err = refused(&rt, &named);
    assert!(matches!(tls_problem(&err), Some(TlsProblem::WrongName { .. })), "{err:?}");
    let text = rendered(err);
    assert!(text.contains("not valid for the server name `build.example`"), "{text}");
    assert!(text.contains("--tlsservername"), "{text}");

    // Plain h2c against the TLS port is refused too, and says so within the deadline.
    let plain = ConnectOptions { addr: Some(format!("tcp://127.0.0.1:{port}")), tls: TlsOptions::default() };
    let started = Instant::now();
    let err = refused(&rt, &plain);
    assert!(started.elapsed() <= connect::CONNECT_TIMEOUT + Duration::from_secs(1));
    assert!(fbuild::cli::render_connect_error(err)
        .contains("hint: if the daemon serves TLS at this address, pass --tlscacert"));

    // The binary connects too, with localhost as the server name.
    let out = Command::new(util::fbuild_binary())
        .args(["--addr", &format!("tcp://localhost:{port}")])
        .arg("--tlscacert")
        .arg(&pki.ca)
        .arg("--tlscert")
        .arg(&pki.client_cert)
        .arg("--tlskey")
        .arg(&pki.client_key)
        .arg("info")
        .env_remove("BUILDKIT_HOST")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fbuild info over mTLS failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&version.version), "fbuild info printed {stdout:?}, expected version {}", version.version);

    // The binary prints the wrong-CA failure the same way, and fails.
    let out = Command::new(util::fbuild_binary())
        .args(["--addr", &format!("tcp://127.0.0.1:{port}")])
        .arg("--tlscacert")
        .arg(&other.ca)
        .arg("info")
        .env_remove("BUILDKIT_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not signed by the CA in --tlscacert"), "{stderr}");
    assert!(stderr.contains("hint: pass the CA certificate"), "{stderr}");
}

#[test]
fn unreadable_tls_files_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing-ca.pem");
    let out = Command::new(util::fbuild_binary())
        .args(["--addr", "tcp://127.0.0.1:1"])
        .arg("--tlscacert")
        .arg(&missing)
        .arg("info")
        .env_remove("BUILDKIT_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("cannot read the --tlscacert file {}", missing.display())), "{stderr}");
}
