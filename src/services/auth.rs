//! Registry credentials from the docker config, and the session's
//! `moby.filesync.v1.Auth` service that gives them to the daemon.
//!
//! The lookup follows the docker CLI (`cli/config/configfile`): the config
//! is `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`; a host's
//! credentials come from `$DOCKER_AUTH_CONFIG` first, then from its
//! `credHelpers` entry or the `credsStore` (`docker-credential-NAME get`,
//! host on stdin, JSON on stdout), else from `auths` (base64 `auth` or
//! `username`/`password`, `identitytoken`). Docker Hub is stored under
//! `https://index.docker.io/v1/`, whatever host name the daemon asks for.
//!
//! Tokens: the daemon first asks `GetTokenAuthority`; this service answers
//! Unimplemented, so the daemon asks `Credentials` and fetches registry
//! tokens itself (`util/resolver/authorizer.go`: no authority key means it
//! never calls `FetchToken`, which is Unimplemented too, and
//! `VerifyTokenAuthority` is only asked of sessions that gave a key). This
//! is what buildctl does with `BUILDKIT_NO_CLIENT_TOKEN=1`; the registry
//! traffic stays on the daemon's side.
//!
//! Secrets never reach a log or a `Debug` string: [`Credential`] redacts its
//! secret, and only host names are logged.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status};

use crate::proto::moby::filesync::v1::auth_server::{Auth, AuthServer};
use crate::proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse, GetTokenAuthorityRequest,
    GetTokenAuthorityResponse, VerifyTokenAuthorityRequest, VerifyTokenAuthorityResponse,
};

/// Where the docker config keeps Docker Hub's credentials.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// The host the daemon talks to for Docker Hub.
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// How long a looked-up credential is reused, as buildctl (tokens of some
/// registries' helpers expire after five minutes).
const CACHE_FOR: Duration = Duration::from_secs(4 * 60 + 50);
/// What credential helpers print when they have nothing for a host.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// A docker config that cannot be read, or a credential helper that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("cannot read the docker config {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse the docker config {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: JsonError,
    },
    #[error("the \"auth\" of {key:?} in {} is not base64 of USER:PASSWORD", path.display())]
    BadAuth { path: PathBuf, key: String },
    #[error("cannot parse DOCKER_AUTH_CONFIG")]
    EnvParse(#[source] JsonError),
    #[error("DOCKER_AUTH_CONFIG: the \"auth\" of {0:?} is missing or not base64 of USER:PASSWORD")]
    EnvBadAuth(String),
    #[error("cannot run the credential helper {program}")]
    HelperSpawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the credential helper {program} failed for {host}: {output}")]
    HelperFailed { program: String, host: String, output: String },
    #[error("the credential helper {program} printed unreadable credentials for {host}")]
    HelperOutput {
        program: String,
        host: String,
        #[source]
        source: JsonError,
    },
}

/// Why a credential file's JSON was refused, without any of its text:
/// serde_json's messages quote the offending value (`invalid type: string
/// "c2VjcmV0…"`), which in these files is a password or a base64 `auth`,
/// and the message ends up on stderr even with `-q`. Only positions, the
/// path of keys to the bad value and a fixed description are kept.
#[derive(Debug, thiserror::Error)]
#[error("{what} at {}line {line} column {column}", at_key(key_path))]
pub struct JsonError {
    what: &'static str,
    /// The keys leading to the bad value (`auths.example.com.auth`), empty
    /// when the text is not JSON at all.
    key_path: String,
    line: usize,
    column: usize,
}

fn at_key(key_path: &str) -> String {
    match key_path {
        "" | "." => String::new(),
        path => format!("{path}, "),
    }
}

impl JsonError {
    /// Describes `err` by its kind and position only.
    fn new(key_path: String, err: &serde_json::Error) -> JsonError {
        use serde_json::error::Category;
        let what = match err.classify() {
            Category::Syntax => "not valid JSON",
            Category::Eof => "JSON that ends early",
            Category::Data => "a value of the wrong type or an unknown key",
            Category::Io => "unreadable JSON",
        };
        let key_path = match err.classify() {
            Category::Data => key_path,
            _ => String::new(),
        };
        JsonError { what, key_path, line: err.line(), column: err.column() }
    }
}

/// The keys our credential files know; any other key is shown as `?`,
/// since it may be a value typed where a key was meant.
const KNOWN_KEYS: &[&str] =
    &["auths", "auth", "username", "password", "identitytoken", "credsStore", "credHelpers", "Username", "Secret"];

/// `path` with unknown keys hidden, except registry hosts (the keys of
/// `auths` and `credHelpers`), which say which entry is wrong.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = Vec::new();
    let mut parent: Option<&str> = None;
    for segment in path.iter() {
        let (shown, name) = match segment {
            Segment::Map { key } if KNOWN_KEYS.contains(&key.as_str()) => (key.clone(), Some(key.as_str())),
            Segment::Map { key } if matches!(parent, Some("auths" | "credHelpers")) => (key.clone(), None),
            Segment::Seq { index } => (index.to_string(), None),
            _ => ("?".to_owned(), None),
        };
        out.push(shown);
        parent = name;
    }
    out.join(".")
}

/// `serde_json::from_slice` whose error never quotes `bytes`.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value =
        serde_path_to_error::deserialize(&mut de).map_err(|err| JsonError::new(key_path(err.path()), err.inner()))?;
    de.end().map_err(|err| JsonError::new(String::new(), &err))?;
    Ok(value)
}

/// A username and its secret (a password or an identity token).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credential {
    /// Empty for an identity token.
    pub username: String,
    /// The password or identity token (redacted in `Debug`).
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.secret.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("Credential").field("username", &self.username).field("secret", &secret).finish()
    }
}

/// One `auths` entry after decoding.
#[derive(Clone, Default)]
struct AuthEntry {
    username: String,
    password: String,
    identity_token: String,
}

impl AuthEntry {
    /// What the daemon gets: an identity token replaces username/password.
    fn credential(&self) -> Credential {
        if self.identity_token.is_empty() {
            Credential { username: self.username.clone(), secret: self.password.clone() }
        } else {
            Credential { username: String::new(), secret: self.identity_token.clone() }
        }
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, FileAuth>,
    #[serde(rename = "credsStore", default)]
    creds_store: String,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct FileAuth {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvConfig {
    #[serde(default)]
    auths: BTreeMap<String, EnvAuth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvAuth {
    #[serde(default)]
    auth: String,
}

/// What a credential helper prints (Go decodes field names case-insensitively;
/// helpers print these spellings).
#[derive(Deserialize)]
struct HelperCredentials {
    #[serde(rename = "Username", alias = "username", default)]
    username: String,
    #[serde(rename = "Secret", alias = "secret", default)]
    secret: String,
}

/// A loaded docker config and where its credential helpers are found.
pub struct DockerConfig {
    auths: BTreeMap<String, AuthEntry>,
    creds_store: String,
    cred_helpers: BTreeMap<String, String>,
    env_auths: BTreeMap<String, AuthEntry>,
    /// `PATH` for the helpers (this process's unless set, for tests).
    helper_path: Option<OsString>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("auths", &self.auths.keys().collect::<Vec<_>>())
            .field("creds_store", &self.creds_store)
            .field("cred_helpers", &self.cred_helpers)
            .field("env_auths", &self.env_auths.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DockerConfig {
    /// The config folder: `$DOCKER_CONFIG`, else `~/.docker`.
    pub fn default_dir() -> PathBuf {
        match std::env::var_os("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => home_dir().join(".docker"),
        }
    }

    /// A config without any credentials.
    pub fn empty() -> DockerConfig {
        DockerConfig {
            auths: BTreeMap::new(),
            creds_store: String::new(),
            cred_helpers: BTreeMap::new(),
            env_auths: BTreeMap::new(),
            helper_path: None,
        }
    }

    /// Loads the user's docker config and `$DOCKER_AUTH_CONFIG`. A missing
    /// config file is an empty config.
    pub fn load() -> Result<DockerConfig, AuthError> {
        let env_config = std::env::var("DOCKER_AUTH_CONFIG").ok().filter(|v| !v.is_empty());
        DockerConfig::load_from(&DockerConfig::default_dir(), env_config.as_deref(), None)
    }

    /// Loads `dir/config.json`, with `env_config` as `$DOCKER_AUTH_CONFIG`
    /// and `helper_path` as the `PATH` helpers are looked up in (`None`:
    /// this process's).
    pub fn load_from(
        dir: &Path,
        env_config: Option<&str>,
        helper_path: Option<OsString>,
    ) -> Result<DockerConfig, AuthError> {
        let path = dir.join("config.json");
        let file: ConfigFile = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => ConfigFile::default(),
            Ok(bytes) => parse_json(&bytes).map_err(|source| AuthError::Parse { path: path.clone(), source })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
            Err(source) => return Err(AuthError::Read { path, source }),
        };
        let mut auths = BTreeMap::new();
        for (key, entry) in file.auths {
            let mut decoded =
                AuthEntry { username: entry.username, password: entry.password, identity_token: entry.identitytoken };
            if !entry.auth.is_empty() {
                let (username, password) = decode_auth(&entry.auth)
                    .ok_or_else(|| AuthError::BadAuth { path: path.clone(), key: key.clone() })?;
                decoded.username = username;
                decoded.password = password;
            }
            auths.insert(key, decoded);
        }
        let mut env_auths = BTreeMap::new();
        if let Some(env_config) = env_config {
            let parsed: EnvConfig = parse_json(env_config.as_bytes()).map_err(AuthError::EnvParse)?;
            for (key, entry) in parsed.auths {
                let (username, password) =
                    decode_auth(&entry.auth).ok_or_else(|| AuthError::EnvBadAuth(key.clone()))?;
                env_auths.insert(key, AuthEntry { username, password, identity_token: String::new() });
            }
        }
        let mut config = DockerConfig {
            auths,
            creds_store: file.creds_store,
            cred_helpers: file.cred_helpers,
            env_auths,
            helper_path,
        };
        // Like `docker`: a config with no credentials at all uses the
        // platform's store when its helper is installed.
        if config.auths.is_empty() && config.cred_helpers.is_empty() && config.creds_store.is_empty() {
            config.creds_store = config.default_store().unwrap_or_default();
        }
        Ok(config)
    }

    /// `pass` when installed, else `secretservice` — if its helper is.
    fn default_store(&self) -> Option<String> {
        let store = if self.find_program("pass").is_some() { "pass" } else { "secretservice" };
        self.find_program(&format!("docker-credential-{store}")).map(|_| store.to_owned())
    }

    fn search_path(&self) -> Option<OsString> {
        self.helper_path.clone().or_else(|| std::env::var_os("PATH"))
    }

    fn find_program(&self, name: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.search_path()?;
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }

    /// The credentials for a registry host as the daemon names it
    /// (`registry-1.docker.io`, `127.0.0.1:5000`, ...). Empty when there are
    /// none: the daemon then goes anonymous.
    pub async fn credentials(&self, host: &str) -> Result<Credential, AuthError> {
        let key = config_key(host);
        if let Some(entry) = self.env_auths.get(key) {
            return Ok(entry.credential());
        }
        let helper = self.cred_helpers.get(key).filter(|h| !h.is_empty()).unwrap_or(&self.creds_store);
        if !helper.is_empty() {
            return self.run_helper(helper, key).await;
        }
        if let Some(entry) = self.auths.get(key) {
            return Ok(entry.credential());
        }
        // Older configs key entries by URL (`https://host/v1/`).
        let entry = self.auths.iter().find(|(stored, _)| hostname_of(stored) == key).map(|(_, entry)| entry);
        Ok(entry.map(AuthEntry::credential).unwrap_or_default())
    }

    async fn run_helper(&self, helper: &str, key: &str) -> Result<Credential, AuthError> {
        let program = format!("docker-credential-{helper}");
        // With our own search path, resolve the helper there and give the
        // child that PATH only: a bare name would be looked up in this
        // process's PATH, and tests run in parallel in one process.
        let mut command = match &self.helper_path {
            Some(path) => {
                let found = self.find_program(&program).unwrap_or_else(|| PathBuf::from(&program));
                let mut command = tokio::process::Command::new(found);
                command.env("PATH", path);
                command
            }
            None => tokio::process::Command::new(&program),
        };
        command.arg("get").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
        let spawn_err = |source| AuthError::HelperSpawn { program: program.clone(), source };
        let mut child = command.spawn().map_err(spawn_err)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(key.as_bytes()).await.map_err(spawn_err)?;
            // Dropping stdin closes it: the helper reads to EOF.
        }
        let output = child.wait_with_output().await.map_err(spawn_err)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            if stdout.contains(HELPER_NOT_FOUND) {
                return Ok(Credential::default());
            }
            return Err(AuthError::HelperFailed { program, host: key.to_owned(), output: stdout.trim().to_owned() });
        }
        let printed: HelperCredentials = parse_json(&output.stdout).map_err(|source| AuthError::HelperOutput {
            program: program.clone(),
            host: key.to_owned(),
            source,
        })?;
        // Helpers store identity tokens under the username `<token>`.
        if printed.username == "<token>" {
            return Ok(Credential { username: String::new(), secret: printed.secret });
        }
        Ok(Credential { username: printed.username, secret: printed.secret })
    }
}

/// The config key for a host: Docker Hub's names map to its one key.
pub fn config_key(host: &str) -> &str {
    match host {
        DOCKER_HUB_REGISTRY | "docker.io" | "index.docker.io" => DOCKER_HUB_KEY,
        _ => host,
    }
}

/// The host (and port) of a stored key that may be a URL.
fn hostname_of(stored: &str) -> &str {
    let rest = stored.split_once("://").map_or(stored, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// Decodes an `auth` value: base64 of `USER:PASSWORD`.
fn decode_auth(auth: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(auth).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (username, password) = text.split_once(':')?;
    if username.is_empty() {
        return None;
    }
    Some((username.to_owned(), password.trim_matches('\0').to_owned()))
}

fn home_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("HOME").filter(|home| !home.is_empty()) {
        return PathBuf::from(home);
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.dir)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The session's Auth service over a [`DockerConfig`], with buildctl's
/// short-lived cache of looked-up credentials.
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<AuthInner>,
}

struct AuthInner {
    config: DockerConfig,
    // One lookup at a time, like buildctl: helpers may prompt or lock.
    cache: tokio::sync::Mutex<HashMap<String, (Instant, Credential)>>,
}

impl fmt::Debug for AuthService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl AuthService {
    /// A service answering from `config`.
    pub fn new(config: DockerConfig) -> AuthService {
        AuthService { inner: Arc::new(AuthInner { config, cache: Default::default() }) }
    }

    /// The tonic server, with the session's message limits.
    pub fn into_server(self) -> AuthServer<AuthService> {
        AuthServer::new(self)
            .max_decoding_message_size(crate::session::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(crate::session::MAX_MESSAGE_SIZE)
    }

    /// The full gRPC method names this service serves.
    pub fn methods() -> &'static [&'static str] {
        &[
            "/moby.filesync.v1.Auth/Credentials",
            "/moby.filesync.v1.Auth/FetchToken",
            "/moby.filesync.v1.Auth/GetTokenAuthority",
            "/moby.filesync.v1.Auth/VerifyTokenAuthority",
        ]
    }

    /// Credentials for `host`, from the cache when fresh.
    pub async fn lookup(&self, host: &str) -> Result<Credential, AuthError> {
        let mut cache = self.inner.cache.lock().await;
        if let Some((at, credential)) = cache.get(host) {
            if at.elapsed() < CACHE_FOR {
                return Ok(credential.clone());
            }
        }
        let credential = self.inner.config.credentials(host).await?;
        cache.insert(host.to_owned(), (Instant::now(), credential.clone()));
        Ok(credential)
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(&self, request: Request<CredentialsRequest>) -> Result<Response<CredentialsResponse>, Status> {
        let host = &request.get_ref().host;
        let credential = self.lookup(host).await.map_err(|err| Status::internal(crate::error::error_chain(&err)))?;
        if credential.secret.is_empty() {
            tracing::debug!(host = host.as_str(), "no credentials for registry");
        } else {
            tracing::debug!(host = host.as_str(), "sharing credentials for registry");
        }
        Ok(Response::new(CredentialsResponse { username: credential.username, secret: credential.secret }))
    }

    async fn fetch_token(&self, _: Request<FetchTokenRequest>) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("fbuild lets the daemon fetch registry tokens"))
    }

    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("fbuild has no token authority; ask for Credentials"))
    }

    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("fbuild has no token authority"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn config_dir(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        dir
    }

    /// A folder holding an executable `docker-credential-test` that answers
    /// like a real helper: JSON for known hosts, "not found" for others, and
    /// records the host it was asked about.
    fn fake_helper() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::tempdir().unwrap();
        let script = bin.path().join("docker-credential-test");
        let log = bin.path().join("asked");
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
[ "$1" = get ] || exit 2
read -r host
echo "$host" >> {log}
case "$host" in
  helper.example.com) printf '{{"ServerURL":"%s","Username":"robot","Secret":"helper-pass"}}\n' "$host" ;;
  https://index.docker.io/v1/) printf '{{"ServerURL":"%s","Username":"<token>","Secret":"hub-identity"}}\n' "$host" ;;
  broken.example.com) echo "helper exploded"; exit 1 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#,
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    /// PATH for the helper: the fake's folder plus the system's, for `sh`.
    fn helper_path(bin: &Path) -> OsString {
        std::env::join_paths([bin, Path::new("/usr/bin"), Path::new("/bin")]).unwrap()
    }

    #[tokio::test]
    async fn auths_entries_decode_auth_and_plain_fields() {
        let json = format!(
            r#"{{"auths": {{
                "reg.example.com": {{"auth": "{}"}},
                "plain.example.com": {{"username": "u", "password": "p"}},
                "token.example.com": {{"auth": "{}", "identitytoken": "id-token"}},
                "https://legacy.example.com/v1/": {{"auth": "{}"}},
                "https://index.docker.io/v1/": {{"auth": "{}"}}
            }}}}"#,
            b64("alice:pa:ss"),
            b64("bob:x"),
            b64("carol:y"),
            b64("hub-user:hub-pass")
        );
        let dir = config_dir(&json);
        let config = DockerConfig::load_from(dir.path(), None, Some(OsString::new())).unwrap();
        let get = |host: &'static str| {
            let config = &config;
            async move { config.credentials(host).await.unwrap() }
        };
        assert_eq!(get("reg.example.com").await, Credential { username: "alice".into(), secret: "pa:ss".into() });
        assert_eq!(get("plain.example.com").await, Credential { username: "u".into(), secret: "p".into() });
        assert_eq!(get("token.example.com").await, Credential { username: String::new(), secret: "id-token".into() });
        assert_eq!(get("legacy.example.com").await.username, "carol", "URL keys match by host");
        for hub in ["registry-1.docker.io", "docker.io", "index.docker.io"] {
            assert_eq!(get(hub).await.secret, "hub-pass", "{hub}");
        }
        assert_eq!(get("unknown.example.com").await, Credential::default());
    }

    #[tokio::test]
    async fn helpers_are_asked_per_host_with_only_the_child_path() {
        let bin = fake_helper();
        let json = format!(
            r#"{{"auths": {{"file.example.com": {{"auth": "{}"}}}},
                "credHelpers": {{"helper.example.com": "test", "missing.example.com": "test",
                                 "broken.example.com": "test", "https://index.docker.io/v1/": "test"}}}}"#,
            b64("file-user:file-pass")
        );
        let dir = config_dir(&json);
        let config = DockerConfig::load_from(dir.path(), None, Some(helper_path(bin.path()))).unwrap();

        let got = config.credentials("helper.example.com").await.unwrap();
        assert_eq!(got, Credential { username: "robot".into(), secret: "helper-pass".into() });
        let hub = config.credentials("registry-1.docker.io").await.unwrap();
        assert_eq!(hub, Credential { username: String::new(), secret: "hub-identity".into() });
        assert_eq!(config.credentials("missing.example.com").await.unwrap(), Credential::default());
        assert_eq!(config.credentials("file.example.com").await.unwrap().username, "file-user");
        let err = config.credentials("broken.example.com").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the credential helper docker-credential-test failed for broken.example.com: helper exploded"
        );

        let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
        assert_eq!(
            asked.lines().collect::<Vec<_>>(),
            ["helper.example.com", "https://index.docker.io/v1/", "missing.example.com", "broken.example.com"]
        );
        // The helper's folder was never added to this process's PATH.
        let own_path = std::env::var_os("PATH").unwrap_or_default();
        assert!(!std::env::split_paths(&own_path).any(|dir| dir == bin.path()));
    }

    #[tokio::test]
    async fn creds_store_covers_every_host() {
        let bin = fake_helper();
        let dir = config_dir(r#"{"credsStore": "test"}"#);
        let config = DockerConfig::load_from(dir.path(), None, Some(helper_path(bin.path()))).unwrap();
        assert_eq!(config.credentials("helper.example.com").await.unwrap().secret, "helper-pass");
        assert_eq!(config.credentials("other.example.com").await.unwrap(), Credential::default());
    }

    #[tokio::test]
    async fn missing_helper_is_an_error_naming_it() {
        let dir = config_dir(r#"{"credsStore": "nonexistent-fbuild"}"#);
        let config = DockerConfig::load_from(dir.path(), None, Some(OsString::from("/nonexistent"))).unwrap();
        let err = config.credentials("reg.example.com").await.unwrap_err();
        assert!(
            matches!(err, AuthError::HelperSpawn { ref program, .. } if program == "docker-credential-nonexistent-fbuild")
        );
    }

    #[tokio::test]
    async fn docker_auth_config_comes_first() {
        let dir = config_dir(&format!(r#"{{"auths": {{"reg.example.com": {{"auth": "{}"}}}}}}"#, b64("file:x")));
        let env = format!(r#"{{"auths": {{"reg.example.com": {{"auth": "{}"}}}}}}"#, b64("env-user:env-pat"));
        let config = DockerConfig::load_from(dir.path(), Some(&env), Some(OsString::new())).unwrap();
        let got = config.credentials("reg.example.com").await.unwrap();
        assert_eq!(got, Credential { username: "env-user".into(), secret: "env-pat".into() });

        let err = DockerConfig::load_from(dir.path(), Some(r#"{"auths": {"r": {}}}"#), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"DOCKER_AUTH_CONFIG: the "auth" of "r" is missing or not base64 of USER:PASSWORD"#
        );
        assert!(matches!(
            DockerConfig::load_from(dir.path(), Some(r#"{"auths": {}, "extra": 1}"#), None),
            Err(AuthError::EnvParse(_))
        ));
    }

    #[test]
    fn broken_configs_name_the_file() {
        let dir = config_dir("{not json");
        let err = DockerConfig::load_from(dir.path(), None, None).unwrap_err();
        assert!(matches!(err, AuthError::Parse { .. }));
        assert!(err.to_string().contains("config.json"), "{err}");

        let dir = config_dir(&format!(r#"{{"auths": {{"r.example.com": {{"auth": "{}"}}}}}}"#, b64("nocolon")));
        let err = DockerConfig::load_from(dir.path(), None, None).unwrap_err();
        assert!(err.to_string().starts_with(r#"the "auth" of "r.example.com" in "#), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let config = DockerConfig::load_from(empty.path(), None, Some(OsString::new())).unwrap();
        assert!(config.auths.is_empty() && config.creds_store.is_empty());
    }

    /// serde_json's messages quote the value they choke on; in a credential
    /// file that is the password or the base64 `auth`.
    #[test]
    fn parse_errors_never_quote_the_file() {
        const SECRET: &str = "c2VjcmV0LXBhc3N3b3Jk";
        let broken = [
            format!(r#"{{"auths": {{"r.example.com": "{SECRET}"}}}}"#),
            format!(r#"{{"auths": "{SECRET}"}}"#),
            format!(r#"{{"auths": {{"r.example.com": {{"auth": ["{SECRET}"], "password": 7}}}}}}"#),
            format!(r#"{{"auths": {{"r.example.com": {{"password": 12345678}}}}, "credsStore": "{SECRET}" }}"#),
            format!(r#"{{"credsStore": ["{SECRET}"]}}"#),
            format!(r#"{{"auths": {{"r.example.com": {{"auth": "{SECRET}" "x": 1}}}}}}"#),
            format!(r#"{{"auths": {{"r.example.com": {{"auth": "{SECRET}\q"}}}}}}"#),
            format!(r#"{{"auths": {{}}}} "{SECRET}""#),
            format!(r#"{{"auths": {{"r.example.com": {{"auth": "{SECRET}"#),
        ];
        for text in &broken {
            let dir = config_dir(text);
            let err = DockerConfig::load_from(dir.path(), None, Some(OsString::new())).unwrap_err();
            let chain = crate::error::error_chain(&err);
            assert!(!chain.contains(SECRET) && !chain.contains("12345678"), "{text}\n{chain}");
            assert!(chain.contains("config.json") && chain.contains(" line "), "{chain}");
            let err = DockerConfig::load_from(dir.path(), Some(text), Some(OsString::new())).unwrap_err();
            let chain = crate::error::error_chain(&err);
            assert!(!chain.contains(SECRET), "{text}\n{chain}");
        }
        // A secret typed where a key was meant is not shown either.
        let env = format!(r#"{{"auths": {{"r.example.com": {{"{SECRET}": "x"}}}}}}"#);
        let err = DockerConfig::load_from(tempfile::tempdir().unwrap().path(), Some(&env), Some(OsString::new()));
        let chain = crate::error::error_chain(&err.unwrap_err());
        assert!(!chain.contains(SECRET) && chain.contains("auths.r.example.com.?"), "{chain}");
        // The path of keys to the bad value is kept (a registry host is not
        // a secret), with the position.
        let dir = config_dir(&format!("{{\n  \"auths\": {{\"r.example.com\": {{\"auth\": 1{SECRET}}}}}}}"));
        let chain = crate::error::error_chain(&DockerConfig::load_from(dir.path(), None, None).unwrap_err());
        assert!(!chain.contains(SECRET), "{chain}");
        let dir = config_dir(&format!("{{\n  \"auths\": {{\"r.example.com\": {{\"auth\": [\"{SECRET}\"]}}}}}}"));
        let chain = crate::error::error_chain(&DockerConfig::load_from(dir.path(), None, None).unwrap_err());
        assert!(
            chain
                .ends_with("a value of the wrong type or an unknown key at auths.r.example.com.auth, line 2 column 38"),
            "{chain}"
        );
    }

    #[test]
    fn default_store_is_used_only_without_any_credentials() {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::tempdir().unwrap();
        let helper = bin.path().join("docker-credential-secretservice");
        std::fs::write(&helper, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = Some(bin.path().as_os_str().to_owned());

        let empty = tempfile::tempdir().unwrap();
        let config = DockerConfig::load_from(empty.path(), None, path.clone()).unwrap();
        assert_eq!(config.creds_store, "secretservice");
        let dir = config_dir(r#"{"auths": {"r": {"username": "u", "password": "p"}}}"#);
        let config = DockerConfig::load_from(dir.path(), None, path).unwrap();
        assert_eq!(config.creds_store, "");
    }

    #[tokio::test]
    async fn service_answers_credentials_and_leaves_tokens_to_the_daemon() {
        let dir = config_dir(&format!(r#"{{"auths": {{"reg.example.com": {{"auth": "{}"}}}}}}"#, b64("u:top-secret")));
        let service = AuthService::new(DockerConfig::load_from(dir.path(), None, Some(OsString::new())).unwrap());
        let response = service
            .credentials(Request::new(CredentialsRequest { host: "reg.example.com".into() }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((response.username.as_str(), response.secret.as_str()), ("u", "top-secret"));

        // The daemon treats Unimplemented from GetTokenAuthority as "no
        // authority" and then uses Credentials.
        let err = service.get_token_authority(Request::new(GetTokenAuthorityRequest::default())).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);
        let err = service.verify_token_authority(Request::new(Default::default())).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);
        let err = service.fetch_token(Request::new(Default::default())).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);

        let debug = format!("{service:?} {:?}", service.lookup("reg.example.com").await.unwrap());
        assert!(!debug.contains("top-secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[tokio::test]
    async fn lookups_are_cached() {
        let bin = fake_helper();
        let dir = config_dir(r#"{"credsStore": "test"}"#);
        let service =
            AuthService::new(DockerConfig::load_from(dir.path(), None, Some(helper_path(bin.path()))).unwrap());
        for _ in 0..3 {
            assert_eq!(service.lookup("helper.example.com").await.unwrap().username, "robot");
        }
        let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
        assert_eq!(asked.lines().count(), 1, "the helper ran once");
    }
}
