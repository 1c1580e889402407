//! Cache backends configured by the CI environment, end to end on the real
//! daemon: GitHub's cache variables reach the daemon's gha exporter and
//! importer (a fake cache service on loopback sees the bearer token), AWS
//! credentials in the environment export to and import from a local S3
//! server (moto's, from `scripts/testenv.sh`), and no secret is printed: not
//! on stdout or stderr, not in `--metadata-file`, not in `bake --print`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use crate::util::{self, testenv, text, unique, PrivateDaemon};

/// One request the fake cache service received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// GitHub's cache service v1 (`_apis/artifactcache`), as much of it as
/// BuildKit's gha cache uses: no entry is ever found, every reservation and
/// upload succeeds. Every request is recorded.
struct FakeCacheService {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeCacheService {
    fn start() -> FakeCacheService {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        FakeCacheService { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves one keep-alive connection until the client closes it.
fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let (mut length, mut chunked, mut authorization) = (0usize, false, None);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
        // Read (and drop) the body, so the connection stays in step.
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
        }
        log.lock().unwrap().push(Seen { method: method.clone(), path: path.clone(), authorization });
        let route = path.split('?').next().unwrap_or("");
        let (status, body) = match (method.as_str(), route) {
            // Nothing cached yet.
            ("GET", p) if p.ends_with("/_apis/artifactcache/cache") => ("204 No Content", String::new()),
            ("POST", p) if p.ends_with("/_apis/artifactcache/caches") => {
                // Any id that is not 0, unique on this service.
                let id = log.lock().unwrap().len();
                ("201 Created", format!("{{\"cacheId\":{id}}}"))
            }
            ("PATCH" | "POST", p) if p.contains("/_apis/artifactcache/caches/") => ("204 No Content", String::new()),
            // Cache service v2 (twirp): nothing cached yet.
            ("POST", p) if p.ends_with("/CacheService/GetCacheEntryDownloadURL") => {
                ("200 OK", r#"{"ok":false,"signed_download_url":"","matched_key":""}"#.to_string())
            }
            _ => ("404 Not Found", String::new()),
        };
        let head =
            format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        if out.write_all(head.as_bytes()).and_then(|()| out.write_all(body.as_bytes())).is_err() {
            return;
        }
    }
}

/// A runtime token of the shape GitHub hands to jobs: a JWT whose claims
/// carry the cache scopes (`ac`) and a validity window. BuildKit reads the
/// claims without checking the signature.
fn runtime_token() -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "ac": "[{\"Scope\":\"refs/heads/main\",\"Permission\":3}]",
        "nbf": now - 60,
        "exp": now + 3600,
        "unique": unique(),
    });
    format!("{}.{}.{}", b64(r#"{"alg":"HS256","typ":"JWT"}"#), b64(&claims.to_string()), b64("not-a-real-signature"))
}

/// A project with a step of its own, so there is a layer to export.
fn project(dir: &Path) {
    util::write_files(dir, &[("Dockerfile", &format!("FROM {}\nRUN echo {} > /stamp\n", testenv().busybox, unique()))]);
}

fn assert_hidden(secrets: &[&str], texts: &[(&str, &str)]) {
    for (what, text) in texts {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret ({secret:?}) is in {what}:\n{text}");
        }
    }
}

#[test]
fn gha_cache_takes_githubs_token_and_url_from_the_environment() {
    let service = FakeCacheService::start();
    let token = runtime_token();
    let dir = util::tempdir();
    project(dir.path());
    let metadata = dir.path().join("metadata.json");
    let output = util::fbuild()
        .env("ACTIONS_RUNTIME_TOKEN", &token)
        .env("ACTIONS_CACHE_URL", &service.url)
        .env_remove("ACTIONS_RESULTS_URL")
        .env_remove("ACTIONS_CACHE_SERVICE_V2")
        .arg("solve")
        .arg(dir.path())
        .args(["--progress", "plain", "--cache-from", "type=gha", "--cache-to", "type=gha,mode=max"])
        .arg("--metadata-file")
        .arg(&metadata)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    let seen = service.seen();
    let bearer = format!("Bearer {token}");
    // The importer looked the cache up, the exporter reserved, uploaded and committed.
    for (method, path) in [("GET", "/_apis/artifactcache/cache?"), ("POST", "/_apis/artifactcache/caches")] {
        assert!(
            seen.iter().any(|s| s.method == method && s.path.starts_with(path)),
            "no {method} {path} at the fake cache service: {seen:#?}\n{stderr}"
        );
    }
    assert!(seen.iter().any(|s| s.method == "PATCH"), "nothing uploaded: {seen:#?}");
    assert!(seen.iter().all(|s| s.authorization.as_deref() == Some(&bearer)), "the daemon's requests: {seen:#?}");
    let metadata = std::fs::read_to_string(&metadata).unwrap();
    assert_hidden(&[&token], &[("stdout", &stdout), ("stderr", &stderr), ("the metadata file", &metadata)]);
}

#[test]
fn gha_cache_service_v2_gets_the_results_url() {
    // GitHub's newer cache service: ACTIONS_CACHE_SERVICE_V2 and only the results URL.
    let service = FakeCacheService::start();
    let token = runtime_token();
    let dir = util::tempdir();
    project(dir.path());
    let output = util::fbuild()
        .env("ACTIONS_RUNTIME_TOKEN", &token)
        .env("ACTIONS_RESULTS_URL", &service.url)
        .env("ACTIONS_CACHE_SERVICE_V2", "true")
        .env_remove("ACTIONS_CACHE_URL")
        .arg("solve")
        .arg(dir.path())
        .args(["--progress", "plain", "--cache-from", "type=gha,scope=v2test"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    let seen = service.seen();
    let lookup = "/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL";
    assert!(seen.iter().any(|s| s.method == "POST" && s.path.ends_with(lookup)), "{seen:#?}\n{stderr}");
    let bearer = format!("Bearer {token}");
    assert!(seen.iter().all(|s| s.authorization.as_deref() == Some(&bearer)), "the daemon's requests: {seen:#?}");
    assert_hidden(&[&token], &[("stdout", &stdout), ("stderr", &stderr)]);
}

#[test]
fn gha_cache_without_githubs_variables_is_skipped_as_buildx_skips_it() {
    let dir = util::tempdir();
    project(dir.path());
    let output = util::fbuild()
        .env_remove("ACTIONS_RUNTIME_TOKEN")
        .env_remove("ACTIONS_CACHE_URL")
        .env_remove("ACTIONS_RESULTS_URL")
        .arg("solve")
        .arg(dir.path())
        .args(["--progress", "plain", "--cache-from", "type=gha", "--cache-to", "type=gha"])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("GitHub Actions"), "no gha cache step without a token: {stderr}");
}

#[test]
fn bake_print_never_shows_credentials_from_the_environment() {
    // buildx's own test (tests/bake.go, testBakePrintSensitive): values given
    // in the file are printed, values from the environment are not.
    let dir = util::tempdir();
    util::write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\n"),
            (
                "compose.yml",
                "services:\n  build:\n    build:\n      context: .\n      cache_from:\n        - type=gha,token=abc\n        \
                 - type=s3,region=us-west-2,bucket=my_bucket,name=my_image\n",
            ),
        ],
    );
    let output = util::fbuild()
        .current_dir(dir.path())
        .env("ACTIONS_RUNTIME_TOKEN", "sensitive_token")
        .env("ACTIONS_CACHE_URL", "https://cache.github.com")
        .env("AWS_ACCESS_KEY_ID", "definitely_dont_look_here")
        .env("AWS_SECRET_ACCESS_KEY", "hackers_please_dont_steal")
        .env("AWS_SESSION_TOKEN", "not_a_mitm_attack")
        .args(["bake", "--print", "build"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        printed["target"]["build"]["cache-from"],
        serde_json::json!([
            {"type": "gha", "token": "abc"},
            {"type": "s3", "region": "us-west-2", "bucket": "my_bucket", "name": "my_image"}
        ]),
        "{stdout}"
    );
    assert_hidden(
        &[
            "sensitive_token",
            "cache.github.com",
            "definitely_dont_look_here",
            "hackers_please_dont_steal",
            "not_a_mitm",
        ],
        &[("stdout", &stdout), ("stderr", &stderr)],
    );
}

/// moto's S3 server, started by `scripts/testenv.sh up` (`FBUILD_TEST_S3`).
fn s3_endpoint() -> String {
    let env_file = std::env::var_os("FBUILD_TESTENV_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".testenv"))
        .join("env");
    std::env::var("FBUILD_TEST_S3")
        .ok()
        .or_else(|| {
            let text = std::fs::read_to_string(&env_file).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("export FBUILD_TEST_S3="))
                .map(|v| v.trim_matches('\'').to_string())
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "no local S3 server: FBUILD_TEST_S3 is neither set nor in {}; start it with `scripts/testenv.sh up`",
                env_file.display()
            )
        })
}

#[test]
fn s3_cache_exports_and_imports_with_credentials_only_in_the_environment() {
    let endpoint = s3_endpoint();
    let bucket = format!("fbuild-{}", unique().to_ascii_lowercase());
    // moto takes any credentials; the bucket is made with a plain PUT.
    let created = std::process::Command::new("curl")
        .args(["-fsS", "-X", "PUT", &format!("{endpoint}/{bucket}")])
        .output()
        .unwrap();
    assert!(created.status.success(), "cannot create bucket {bucket} at {endpoint}: {}", text(&created.stderr));
    let dir = util::tempdir();
    project(dir.path());
    let cache = format!("type=s3,bucket={bucket},endpoint_url={endpoint},use_path_style=true,name=app");
    let (key_id, secret, session) = ("AKIDFBUILDTEST", "fbuild-test-secret-key", "fbuild-test-session");
    let run = |daemon: &PrivateDaemon, args: &[&str]| {
        let output = daemon
            .fbuild()
            .env("AWS_ACCESS_KEY_ID", key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_SESSION_TOKEN", session)
            .env("AWS_REGION", "us-east-1")
            .arg("solve")
            .arg(dir.path())
            .args(["--progress", "rawjson", "-v"])
            .args(args)
            .output()
            .unwrap();
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "{args:?}: {stderr}\n{}", daemon.log_tail());
        assert_hidden(&[secret, session], &[("stdout", &stdout), ("stderr", &stderr)]);
        stderr
    };
    // Two fresh daemons, as two CI runners: the second finds the first's layers in S3.
    let config = testenv().root.join("buildkitd.toml");
    let first = PrivateDaemon::start([std::ffi::OsStr::new("--config"), config.as_os_str()]);
    run(&first, &["--cache-to", &format!("{cache},mode=max")]);
    drop(first);
    let second = PrivateDaemon::start([std::ffi::OsStr::new("--config"), config.as_os_str()]);
    let stderr = run(&second, &["--cache-from", &cache]);
    assert_eq!(util::rawjson_step_cached(&stderr, "RUN echo"), Some(true), "the step comes from S3:\n{stderr}");
}

#[test]
fn bake_targets_take_githubs_variables_too() {
    let service = FakeCacheService::start();
    let token = runtime_token();
    let dir = util::tempdir();
    project(dir.path());
    util::write_files(
        dir.path(),
        &[(
            "docker-bake.hcl",
            "target \"default\" {\n  cache-from = [\"type=gha\"]\n  cache-to = [\"type=gha,mode=max\"]\n}\n",
        )],
    );
    let output = util::fbuild()
        .current_dir(dir.path())
        .env("ACTIONS_RUNTIME_TOKEN", &token)
        .env("ACTIONS_CACHE_URL", &service.url)
        .env_remove("ACTIONS_RESULTS_URL")
        .env_remove("ACTIONS_CACHE_SERVICE_V2")
        .args(["bake", "--progress", "plain"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    let seen = service.seen();
    assert!(seen.iter().any(|s| s.method == "POST"), "the bake target exported nothing to the service: {seen:#?}");
    let bearer = format!("Bearer {token}");
    assert!(seen.iter().all(|s| s.authorization.as_deref() == Some(&bearer)), "{seen:#?}");
    assert_hidden(&[&token], &[("stdout", &stdout), ("stderr", &stderr)]);
}
