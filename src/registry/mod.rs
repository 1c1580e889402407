//! A small client of the OCI distribution API, for what fbuild does with a
//! registry itself rather than through the daemon: `imagetools` reads
//! manifests, copies them between repositories and pushes indexes.
//!
//! Builds never use it: the daemon pulls and pushes, and gets credentials
//! from the session's Auth service. Here the same docker config
//! ([`DockerConfig`]) gives the credentials, and the registry's token
//! service is asked as containerd's resolver asks it (`WWW-Authenticate:
//! Bearer realm=...,service=...,scope=...`, or Basic).
//!
//! Plain HTTP is used only for loopback registries (`localhost`, `127.*`,
//! `::1`), after HTTPS failed to connect, as containerd's `MatchLocalhost`
//! does for buildx. Nothing read from a registry is trusted for size:
//! manifests and blobs read into memory are bounded.

pub(crate) mod oci;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::llb::Named;
use crate::services::auth::{AuthError, Credential, DockerConfig};

/// The most a manifest, index or config may weigh (distribution's own
/// limit for manifests is 4 MiB).
pub(crate) const MAX_DOCUMENT: u64 = 4 << 20;

/// Every manifest type `imagetools` understands, in the order registries
/// are asked for them.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The HTTP client could not be set up (TLS roots).
    #[error("cannot set up the HTTP client for registries")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The registry could not be reached.
    #[error("cannot reach the registry {host}")]
    Unreachable {
        host: String,
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an error status.
    #[error("{operation} {what}: the registry answered {status}{}", detail_suffix(detail))]
    Status { operation: &'static str, what: String, status: StatusCode, detail: String },
    /// Nothing at that reference.
    #[error("{what}: not found")]
    NotFound { what: String },
    /// The credentials could not be looked up.
    #[error("cannot look up the credentials for {host}")]
    Credentials {
        host: String,
        #[source]
        source: Box<AuthError>,
    },
    /// The registry's token service did not give a token.
    #[error("the token service of {host} gave no token: {reason}")]
    Token { host: String, reason: String },
    /// A document over the 4 MiB bound.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    /// Content whose digest is not the one asked for.
    #[error("{what}: the registry sent content of digest {actual}")]
    DigestMismatch { what: String, actual: String },
    /// A registry answer that is not what the protocol says.
    #[error("{what}: {reason}")]
    Protocol { what: String, reason: String },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// A repository in a registry: `host` and `path` as a [`Named`] has them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Repository {
    pub(crate) host: String,
    pub(crate) path: String,
}

impl Repository {
    pub(crate) fn of(named: &Named) -> Repository {
        Repository { host: named.domain.clone(), path: named.path.clone() }
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.path)
    }
}

/// A manifest or index as the registry gave it.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) bytes: Bytes,
    /// The `Content-Type` the registry gave (may be empty).
    pub(crate) media_type: String,
    /// The sha256 of `bytes`.
    pub(crate) digest: String,
}

/// A registry client with the user's docker config.
pub(crate) struct Registry {
    http: reqwest::Client,
    config: DockerConfig,
    /// Bearer tokens by host and scope.
    tokens: Mutex<HashMap<(String, String), String>>,
    /// Loopback hosts found to speak plain HTTP.
    plain_http: Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// What a request needs from the token service.
#[derive(Debug, Clone)]
struct Scope(String);

impl Scope {
    fn pull(repo: &Repository) -> Scope {
        Scope(format!("repository:{}:pull", repo.path))
    }
    fn push(repo: &Repository) -> Scope {
        Scope(format!("repository:{}:pull,push", repo.path))
    }
    /// Push to `to` and mount from `from`.
    fn mount(to: &Repository, from: &Repository) -> Scope {
        Scope(format!("repository:{}:pull,push repository:{}:pull", to.path, from.path))
    }
}

/// One request, replayable after an authentication challenge.
struct Call<'a> {
    method: Method,
    repo: &'a Repository,
    /// The path after `/v2/<repository>/`, or a full URL (upload locations).
    path: String,
    headers: HeaderMap,
    body: Option<Bytes>,
    scope: Scope,
}

impl<'a> Call<'a> {
    /// A read of `path` in `repo` (no body; pull scope), with `accept` as
    /// the `Accept` header when given.
    fn read(method: Method, repo: &'a Repository, path: String, accept: Option<&'static str>) -> Call<'a> {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(ACCEPT, HeaderValue::from_static(accept));
        }
        Call { method, repo, path, headers, body: None, scope: Scope::pull(repo) }
    }
}

impl Registry {
    /// A client with the TLS roots of the platform and `config`'s credentials.
    pub(crate) fn new(config: DockerConfig) -> Result<Registry, RegistryError> {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| RegistryError::Client(Box::new(e)))?
            .with_platform_verifier()
            .map_err(|e| RegistryError::Client(Box::new(e)))?
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("fbuild/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by hand: blob downloads go to storage
            // that must not see the registry's Authorization header.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| RegistryError::Client(Box::new(e)))?;
        Ok(Registry { http, config, tokens: Mutex::new(HashMap::new()), plain_http: Mutex::new(HashMap::new()) })
    }

    /// The manifest or index at `reference` (a tag or a digest).
    pub(crate) async fn manifest(&self, repo: &Repository, reference: &str) -> Result<Fetched, RegistryError> {
        let what = format!("{repo}{}{reference}", if reference.contains(':') { "@" } else { ":" });
        let call = Call::read(Method::GET, repo, format!("manifests/{reference}"), Some(MANIFEST_ACCEPT));
        let response = self.send(&call).await?;
        let response = expect(response, "get the manifest of", &what, &[StatusCode::OK]).await?;
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        let bytes = read_bounded(response, &what, MAX_DOCUMENT).await?;
        let digest = sha256_digest(&bytes);
        if reference.starts_with("sha256:") && reference != digest {
            return Err(RegistryError::DigestMismatch { what, actual: digest });
        }
        Ok(Fetched { bytes, media_type, digest })
    }

    /// A small blob (a config, an attestation), read whole and checked.
    pub(crate) async fn blob(&self, repo: &Repository, digest: &str, limit: u64) -> Result<Bytes, RegistryError> {
        let what = format!("{repo}@{digest}");
        let response = self.get_blob(repo, digest).await?;
        let bytes = read_bounded(response, &what, limit).await?;
        let actual = sha256_digest(&bytes);
        if digest.starts_with("sha256:") && actual != digest {
            return Err(RegistryError::DigestMismatch { what, actual });
        }
        Ok(bytes)
    }

    /// Whether `repo` has the blob (or manifest, with `manifest`) `digest`.
    pub(crate) async fn exists(&self, repo: &Repository, digest: &str, manifest: bool) -> Result<bool, RegistryError> {
        let kind = if manifest { "manifests" } else { "blobs" };
        let call = Call::read(Method::HEAD, repo, format!("{kind}/{digest}"), manifest.then_some(MANIFEST_ACCEPT));
        let response = self.send(&call).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(response, "look up", &format!("{repo}@{digest}")).await),
        }
    }

    /// Makes `to` hold the blob `digest` of `size` bytes that `from` has:
    /// nothing when it is there already, a cross-repository mount on the same
    /// registry, else a streamed download and upload.
    pub(crate) async fn copy_blob(
        &self,
        from: &Repository,
        to: &Repository,
        digest: &str,
        size: u64,
    ) -> Result<(), RegistryError> {
        if self.exists(to, digest, false).await? {
            return Ok(());
        }
        let what = format!("{to}@{digest}");
        let mount_from = (from.host == to.host).then_some(from);
        let mut path = "blobs/uploads/".to_owned();
        if let Some(from) = mount_from {
            path = format!("blobs/uploads/?mount={digest}&from={}", from.path);
        }
        let scope = match mount_from {
            Some(from) => Scope::mount(to, from),
            None => Scope::push(to),
        };
        let call =
            Call { method: Method::POST, repo: to, path, headers: HeaderMap::new(), body: None, scope: scope.clone() };
        let response = self.send(&call).await?;
        if response.status() == StatusCode::CREATED {
            return Ok(()); // mounted
        }
        let response = expect(response, "start an upload to", &what, &[StatusCode::ACCEPTED]).await?;
        let location = upload_location(&response, &what)?;
        let source = self.get_blob(from, digest).await?;
        let mut hasher = Sha256::new();
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = counted.clone();
        let stream = source.bytes_stream().map(move |chunk| {
            if let Ok(chunk) = &chunk {
                hasher.update(chunk);
                counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            chunk
        });
        let url = with_query(&location, "digest", digest);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        // A streamed body cannot be replayed: the upload session's token
        // was settled by the POST above, as containerd's pusher relies on.
        let request = self
            .authorized(to, &scope, self.http.request(Method::PUT, &url).headers(headers))
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
        let response = request.send().await.map_err(|source| unreachable(to, source))?;
        expect(response, "upload", &what, &[StatusCode::CREATED]).await?;
        let sent = counted.load(std::sync::atomic::Ordering::Relaxed);
        if sent != size {
            return Err(RegistryError::Protocol { what, reason: format!("copied {sent} bytes, expected {size}") });
        }
        Ok(())
    }

    /// Pushes a manifest or index under `reference` (a tag or its digest).
    pub(crate) async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        let what = format!("{repo}{}{reference}", if reference.contains(':') { "@" } else { ":" });
        let mut headers = HeaderMap::new();
        let content_type = HeaderValue::from_str(media_type).map_err(|_| RegistryError::Protocol {
            what: what.clone(),
            reason: format!("bad media type {media_type:?}"),
        })?;
        headers.insert(CONTENT_TYPE, content_type);
        let call = Call {
            method: Method::PUT,
            repo,
            path: format!("manifests/{reference}"),
            headers,
            body: Some(bytes),
            scope: Scope::push(repo),
        };
        let response = self.send(&call).await?;
        expect(response, "push", &what, &[StatusCode::CREATED, StatusCode::OK, StatusCode::ACCEPTED]).await?;
        Ok(())
    }

    /// The referrers of `digest` of `artifact_type`, from the referrers API
    /// or, when the registry has none, the fallback tag `sha256-<hex>`.
    pub(crate) async fn referrers(
        &self,
        repo: &Repository,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Vec<oci::Descriptor>, RegistryError> {
        let what = format!("the referrers of {repo}@{digest}");
        let path = format!("referrers/{digest}?artifactType={}", percent_encode(artifact_type));
        let call = Call::read(Method::GET, repo, path, Some("application/vnd.oci.image.index.v1+json"));
        let response = self.send(&call).await?;
        let index_bytes = match response.status() {
            StatusCode::OK => read_bounded(response, &what, MAX_DOCUMENT).await?,
            StatusCode::NOT_FOUND => {
                let tag = digest.replacen(':', "-", 1);
                match self.manifest(repo, &tag).await {
                    Ok(fetched) => fetched.bytes,
                    Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                }
            }
            _ => return Err(status_error(response, "list", &what).await),
        };
        let index: oci::Index = serde_json::from_slice(&index_bytes)
            .map_err(|e| RegistryError::Protocol { what: what.clone(), reason: format!("not an index: {e}") })?;
        Ok(index.manifests.into_iter().filter(|d| d.artifact_type.as_deref() == Some(artifact_type)).collect())
    }

    async fn get_blob(&self, repo: &Repository, digest: &str) -> Result<reqwest::Response, RegistryError> {
        let what = format!("{repo}@{digest}");
        let call = Call::read(Method::GET, repo, format!("blobs/{digest}"), None);
        let mut response = self.send(&call).await?;
        // Storage redirects (S3, a CDN): followed without the registry's
        // credentials, at most a few times.
        for _ in 0..5 {
            if !response.status().is_redirection() {
                break;
            }
            let location = upload_location(&response, &what)?;
            response = self.http.get(&location).send().await.map_err(|source| unreachable(repo, source))?;
        }
        expect(response, "download", &what, &[StatusCode::OK]).await
    }

    /// Sends `call`, answering one authentication challenge.
    async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response, RegistryError> {
        let response = self.send_once(call).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        self.answer_challenge(call.repo, &call.scope, &challenge).await?;
        self.send_once(call).await
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<reqwest::Response, RegistryError> {
        let url = if call.path.starts_with("http://") || call.path.starts_with("https://") {
            call.path.clone()
        } else {
            format!("{}/v2/{}/{}", self.base_url(&call.repo.host).await?, call.repo.path, call.path)
        };
        let mut request = self.http.request(call.method.clone(), &url).headers(call.headers.clone());
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        let request = self.authorized(call.repo, &call.scope, request);
        request.send().await.map_err(|source| unreachable(call.repo, source))
    }

    /// `https://host`, or `http://host` for a loopback registry that does not
    /// speak TLS.
    async fn base_url(&self, host: &str) -> Result<String, RegistryError> {
        if !is_loopback(host) {
            return Ok(format!("https://{host}"));
        }
        if let Some(plain) = self.plain_http.lock().expect("not poisoned").get(host).copied() {
            return Ok(format!("{}://{host}", if plain { "http" } else { "https" }));
        }
        let plain = self.http.get(format!("https://{host}/v2/")).send().await.is_err();
        self.plain_http.lock().expect("not poisoned").insert(host.to_owned(), plain);
        Ok(format!("{}://{host}", if plain { "http" } else { "https" }))
    }

    /// `request` with the Authorization a challenge for this host and scope
    /// was answered with, if any.
    fn authorized(
        &self,
        repo: &Repository,
        scope: &Scope,
        request: reqwest::RequestBuilder,
    ) -> reqwest::RequestBuilder {
        let token = self.tokens.lock().expect("not poisoned").get(&(repo.host.clone(), scope.0.clone())).cloned();
        match token {
            Some(value) => request.header(AUTHORIZATION, value),
            None => request,
        }
    }

    /// Gets what a `WWW-Authenticate` challenge asks for and keeps it for
    /// the host and scope.
    async fn answer_challenge(&self, repo: &Repository, scope: &Scope, challenge: &str) -> Result<(), RegistryError> {
        let host = &repo.host;
        let credential = self
            .config
            .credentials(host)
            .await
            .map_err(|source| RegistryError::Credentials { host: host.clone(), source: Box::new(source) })?;
        let (scheme, params) = parse_challenge(challenge);
        let value = if scheme.eq_ignore_ascii_case("basic") {
            if credential.username.is_empty() && credential.secret.is_empty() {
                return Err(RegistryError::Token {
                    host: host.clone(),
                    reason: "it asks for credentials and the docker config has none".into(),
                });
            }
            basic(&credential)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            format!("Bearer {}", self.fetch_token(host, &params, scope, &credential).await?)
        } else {
            return Err(RegistryError::Token { host: host.clone(), reason: format!("unknown challenge {scheme:?}") });
        };
        self.tokens.lock().expect("not poisoned").insert((host.clone(), scope.0.clone()), value);
        Ok(())
    }

    async fn fetch_token(
        &self,
        host: &str,
        params: &HashMap<String, String>,
        scope: &Scope,
        credential: &Credential,
    ) -> Result<String, RegistryError> {
        let token_error = |reason: String| RegistryError::Token { host: host.to_owned(), reason };
        let realm = params.get("realm").ok_or_else(|| token_error("the challenge names no realm".into()))?;
        let service = params.get("service").cloned().unwrap_or_default();
        let scopes: Vec<&str> = scope.0.split(' ').collect();
        let response = if credential.username.is_empty() && !credential.secret.is_empty() {
            // An identity token: OAuth2's refresh grant, as containerd does.
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("service", service.clone()),
                ("client_id", "fbuild".to_owned()),
                ("refresh_token", credential.secret.clone()),
            ];
            form.push(("scope", scopes.join(" ")));
            let body = form.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect::<Vec<_>>().join("&");
            self.http.post(realm).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body).send().await
        } else {
            let mut url = with_query(realm, "service", &service);
            for scope in &scopes {
                url = with_query(&url, "scope", scope);
            }
            let mut request = self.http.get(url);
            if !credential.username.is_empty() {
                request = request.header(AUTHORIZATION, basic(credential));
            }
            request.send().await
        };
        let response = response.map_err(|e| token_error(format!("cannot reach {realm}: {e}")))?;
        if !response.status().is_success() {
            return Err(token_error(format!("{realm} answered {}", response.status())));
        }
        let bytes = read_bounded(response, realm, 1 << 20).await?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|_| token_error(format!("{realm} answered something that is not a token")))?;
        let token = if answer.access_token.is_empty() { answer.token } else { answer.access_token };
        if token.is_empty() {
            return Err(token_error(format!("{realm} answered an empty token")));
        }
        Ok(token)
    }
}

fn basic(credential: &Credential) -> String {
    let raw = format!("{}:{}", credential.username, credential.secret);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// `Bearer realm="...",service="..."` as a scheme and its parameters.
fn parse_challenge(challenge: &str) -> (String, HashMap<String, String>) {
    let challenge = challenge.trim();
    let (scheme, rest) = challenge.split_once(' ').unwrap_or((challenge, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(key, value);
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_owned(), params)
}

fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host }),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{key}={}", percent_encode(value))
}

fn unreachable(repo: &Repository, source: reqwest::Error) -> RegistryError {
    RegistryError::Unreachable { host: repo.host.clone(), source }
}

/// The absolute URL of a `Location` header (upload sessions and redirects
/// may give a path).
fn upload_location(response: &reqwest::Response, what: &str) -> Result<String, RegistryError> {
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol { what: what.to_owned(), reason: "no Location in the answer".into() })?;
    let url = response.url().join(location).map_err(|e| RegistryError::Protocol {
        what: what.to_owned(),
        reason: format!("a Location that is not a URL: {e}"),
    })?;
    Ok(url.to_string())
}

async fn expect(
    response: reqwest::Response,
    operation: &'static str,
    what: &str,
    ok: &[StatusCode],
) -> Result<reqwest::Response, RegistryError> {
    if ok.contains(&response.status()) {
        return Ok(response);
    }
    if response.status() == StatusCode::NOT_FOUND {
        return Err(RegistryError::NotFound { what: what.to_owned() });
    }
    Err(status_error(response, operation, what).await)
}

/// An error status with the first of the registry's `errors[].message`.
async fn status_error(response: reqwest::Response, operation: &'static str, what: &str) -> RegistryError {
    let status = response.status();
    let detail = match read_bounded(response, what, 64 << 10).await {
        Ok(body) => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("errors")?.get(0)?.get("message")?.as_str().map(str::to_owned))
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    RegistryError::Status { operation, what: what.to_owned(), status, detail }
}

/// The body, refused past `limit` bytes (whatever Content-Length says).
async fn read_bounded(response: reqwest::Response, what: &str, limit: u64) -> Result<Bytes, RegistryError> {
    let too_large = || RegistryError::TooLarge { what: what.to_owned(), limit };
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let host = response.url().host_str().unwrap_or("").to_owned();
    let mut stream = response.bytes_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| RegistryError::Unreachable { host: host.clone(), source })?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// Why an image's config could not be read. The words are a lint
/// finding's (the daemon's `failed to resolve source metadata`), so each
/// cause is part of the message rather than a source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageConfigError {
    #[error("{0}")]
    Reference(crate::llb::ReferenceError),
    #[error("failed to resolve source metadata: {}", crate::error::error_chain(.0))]
    Resolve(RegistryError),
    /// A manifest or index that is not the JSON it claims to be.
    #[error("{0}")]
    Document(serde_json::Error),
    #[error("no image for platform {0}")]
    NoPlatform(String),
    #[error("the manifest names no config")]
    NoConfig,
    #[error("the config is not text: {0}")]
    NotText(std::string::FromUtf8Error),
}

/// The config (JSON text) of image `name` for `platform` (`os/arch[/variant]`),
/// as the daemon's frontend resolves a base image: an index picks the
/// manifest of that platform.
pub(crate) async fn image_config(registry: &Registry, name: &str, platform: &str) -> Result<String, ImageConfigError> {
    let named = crate::llb::parse_reference(name).map_err(ImageConfigError::Reference)?;
    let repo = Repository::of(&named);
    let reference = named.digest.clone().or_else(|| named.tag.clone()).unwrap_or_else(|| "latest".into());
    let mut fetched = registry.manifest(&repo, &reference).await.map_err(ImageConfigError::Resolve)?;
    let probe: serde_json::Value = serde_json::from_slice(&fetched.bytes).map_err(ImageConfigError::Document)?;
    if oci::is_index(&fetched.media_type) || probe.get("manifests").is_some() {
        let index: oci::Index = serde_json::from_slice(&fetched.bytes).map_err(ImageConfigError::Document)?;
        let chosen = index
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.clone().normalize().format() == platform))
            .ok_or_else(|| ImageConfigError::NoPlatform(platform.to_owned()))?;
        fetched = registry.manifest(&repo, &chosen.digest).await.map_err(ImageConfigError::Resolve)?;
    }
    let manifest: oci::Manifest = serde_json::from_slice(&fetched.bytes).map_err(ImageConfigError::Document)?;
    let config = manifest.config.ok_or(ImageConfigError::NoConfig)?;
    let bytes = registry.blob(&repo, &config.digest, MAX_DOCUMENT).await.map_err(ImageConfigError::Resolve)?;
    String::from_utf8(bytes.to_vec()).map_err(ImageConfigError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed_with_quotes_and_commas() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(params["realm"], "https://auth.example/token");
        assert_eq!(params["service"], "registry.example");
        assert_eq!(params["scope"], "repository:a/b:pull,push");
        let (scheme, params) = parse_challenge(r#"Basic realm="x\"y""#);
        assert_eq!(scheme, "Basic");
        assert_eq!(params["realm"], "x\"y");
    }

    #[test]
    fn only_loopback_hosts_may_use_plain_http() {
        for host in ["localhost:5000", "127.0.0.1:5555", "127.1.2.3", "[::1]:5000", "localhost"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["registry.example:5000", "10.0.0.1:5000", "docker.io", "localhost.example"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            with_query("https://a/token", "scope", "repository:x/y:pull,push"),
            "https://a/token?scope=repository%3Ax%2Fy%3Apull%2Cpush"
        );
        assert_eq!(with_query("https://a/u?x=1", "digest", "sha256:ab"), "https://a/u?x=1&digest=sha256%3Aab");
    }
}
