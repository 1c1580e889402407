//! Source ops: where a graph's filesystems come from (Go's `source.go`).
//!
//! [`image`] pulls a registry image (`docker-image://` with the reference
//! normalized as Go does), [`local`] reads a folder the client sends over the
//! session (`local://`), [`http()`] downloads a file, [`git()`] checks out a
//! repository (`git://`, the remote normalized as Go does in
//! `git_url.rs`), and [`scratch`] is the empty filesystem, which is no op at
//! all.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::proto::pb;

use super::git_url;
use super::marshal::Marshaller;
use super::path;
use super::reference::{self, ReferenceError};
use super::state::{normalize_platform, Location, OpOptions, Output, State, Vertex};
use super::MarshalError;

/// The empty filesystem.
pub fn scratch() -> State {
    State::from_output(None)
}

/// Options of [`image_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Which platform's image to pull; also the platform later ops on the
    /// state are built for. Default: the marshal-time platform.
    pub platform: Option<pb::Platform>,
    /// How the daemon finds the image (Go's `ResolveMode`): `pull` always
    /// asks the registry, `local` prefers the daemon's copy; `None` is the
    /// default.
    pub resolve_mode: Option<String>,
    /// Progress name and cache settings of the op.
    pub op: OpOptions,
}

/// A registry image: `busybox` means `docker.io/library/busybox:latest`, a
/// reference with a registry host is kept as given (plus `:latest` when it
/// has neither tag nor digest).
pub fn image(reference: &str) -> State {
    image_with(reference, ImageOptions::default())
}

/// [`image`] with options.
pub fn image_with(reference: &str, options: ImageOptions) -> State {
    // Like Go, an invalid reference is kept as given and reported when the
    // graph is marshalled, so building a state never fails.
    let (identifier, error) = match reference::normalize(reference) {
        Ok(name) => (format!("docker-image://{name}"), None),
        Err(error) => (format!("docker-image://{reference}"), Some((reference.to_owned(), error))),
    };
    let platform = options.platform.map(normalize_platform);
    let mut attrs = BTreeMap::new();
    let mut caps = vec!["source.image"];
    if let Some(mode) = options.resolve_mode.filter(|m| !m.is_empty() && m != "default") {
        // Only the forced pull is a security setting the daemon must know.
        if mode == "pull" {
            caps.push("source.image.resolvemode");
        }
        attrs.insert("image.resolvemode".to_owned(), mode);
    }
    let op = SourceOp { identifier, attrs, platform: platform.clone(), caps, options: options.op, error };
    let mut state = State::from_output(Some(Output::new(Arc::new(op), 0)));
    // Go's `ensurePlatform`: a source built for a platform makes it the
    // state's, so ops built on it follow.
    state.platform = platform;
    state
}

/// Options of [`local`]: which client folder, and which part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalOptions {
    /// The session that serves the folder (`local.session`): the daemon asks
    /// this session's FileSync for it.
    pub session_id: String,
    /// Only these paths (moby pattern syntax) are sent.
    pub include_patterns: Vec<String>,
    /// These paths are not sent (`.dockerignore` lands here).
    pub exclude_patterns: Vec<String>,
    /// Paths whose symlinks are followed when sending.
    pub follow_paths: Vec<String>,
    /// The key under which the daemon keeps the previous upload; a stable
    /// value per folder lets it ask only for changed files.
    pub shared_key_hint: Option<String>,
    /// Progress name and cache settings of the op.
    pub op: OpOptions,
}

impl LocalOptions {
    /// Options for the folder `session_id` serves, with no filters.
    pub fn new(session_id: impl Into<String>) -> Self {
        LocalOptions { session_id: session_id.into(), ..Default::default() }
    }
}

/// A folder on the client, named as the session's FileSync knows it
/// (`context`, `dockerfile`, ...).
pub fn local(name: &str, options: LocalOptions) -> State {
    let mut attrs = BTreeMap::new();
    let mut caps = vec![];
    // Go's option order; the attrs map sorts anyway, caps are a set.
    if !options.session_id.is_empty() {
        attrs.insert("local.session".to_owned(), options.session_id.clone());
        caps.push("source.local.sessionid");
    }
    if !options.include_patterns.is_empty() {
        attrs.insert("local.includepattern".to_owned(), json_list(&options.include_patterns));
        caps.push("source.local.includepatterns");
    }
    if !options.follow_paths.is_empty() {
        attrs.insert("local.followpaths".to_owned(), json_list(&options.follow_paths));
        caps.push("source.local.followpaths");
    }
    if !options.exclude_patterns.is_empty() {
        attrs.insert("local.excludepatterns".to_owned(), json_list(&options.exclude_patterns));
        caps.push("source.local.excludepatterns");
    }
    if let Some(hint) = options.shared_key_hint.filter(|hint| !hint.is_empty()) {
        attrs.insert("local.sharedkeyhint".to_owned(), hint);
        caps.push("source.local.sharedkeyhint");
    }
    caps.push("source.local");
    let op = SourceOp {
        identifier: format!("local://{name}"),
        attrs,
        platform: None,
        caps,
        options: options.op,
        error: None,
    };
    State::from_output(Some(Output::new(Arc::new(op), 0)))
}

/// Options of [`http()`] (Go's `HTTPOption`s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpOptions {
    /// The name of the downloaded file; default: taken from the URL.
    pub filename: Option<String>,
    /// The digest the download must have (`sha256:...`); the daemon checks
    /// it and can use it as the cache key without downloading.
    pub checksum: Option<String>,
    /// Permission bits of the file (only the low nine bits count, as in Go's
    /// `Chmod`); `None` or 0: the daemon's default, `0600`.
    pub chmod: Option<u32>,
    /// Owner of the file; `None` or 0: root (Go leaves 0 out).
    pub uid: Option<u32>,
    /// Group of the file; `None` or 0: root.
    pub gid: Option<u32>,
    /// Progress name and cache settings of the op.
    pub op: OpOptions,
}

/// A file downloaded over HTTP(S) (Go's `llb.HTTP`). The identifier is the
/// URL as given.
pub fn http(url: &str, options: HttpOptions) -> State {
    let mut attrs = BTreeMap::new();
    let mut caps = vec![];
    if let Some(checksum) = options.checksum.filter(|c| !c.is_empty()) {
        attrs.insert("http.checksum".to_owned(), checksum);
        caps.push("source.http.checksum");
    }
    if let Some(filename) = options.filename.filter(|f| !f.is_empty()) {
        attrs.insert("http.filename".to_owned(), filename);
    }
    if let Some(perm) = options.chmod.map(|mode| mode & 0o777).filter(|&mode| mode != 0) {
        // Go writes `"0" + octal`.
        attrs.insert("http.perm".to_owned(), format!("0{perm:o}"));
        caps.push("source.http.perm");
    }
    // Go's capability name really is spelled "soruce".
    if let Some(uid) = options.uid.filter(|&uid| uid != 0) {
        attrs.insert("http.uid".to_owned(), uid.to_string());
        caps.push("soruce.http.uidgid");
    }
    if let Some(gid) = options.gid.filter(|&gid| gid != 0) {
        attrs.insert("http.gid".to_owned(), gid.to_string());
        caps.push("soruce.http.uidgid");
    }
    caps.push("source.http");
    let op = SourceOp { identifier: url.to_owned(), attrs, platform: None, caps, options: options.op, error: None };
    State::from_output(Some(Output::new(Arc::new(op), 0)))
}

/// Options of [`git()`] (Go's `GitOption`s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitOptions {
    /// Keep the `.git` directory in the checkout.
    pub keep_git_dir: bool,
    /// Only this directory of the repository; overrides a `:subdir` in the
    /// reference (and, as Go's `GitSubDir`, is used as given).
    pub subdir: Option<String>,
    /// The commit the reference must resolve to.
    pub checksum: Option<String>,
    /// Do not check out submodules.
    pub skip_submodules: bool,
    /// Fetch the commit `checksum` names directly, without asking the
    /// remote what the reference is (Go's `GitFetchByCommit`).
    pub fetch_by_commit: bool,
    /// The session secret holding a token for HTTP(S) remotes; default
    /// `GIT_AUTH_TOKEN` (set here, the op also asks for the auth capability).
    pub auth_token_secret: Option<String>,
    /// The session secret holding an `Authorization` header; default
    /// `GIT_AUTH_HEADER`.
    pub auth_header_secret: Option<String>,
    /// `known_hosts` lines for SSH remotes. Go scans the host's keys over
    /// the network when this is empty; fbuild does not, so an SSH remote
    /// without them leaves the attribute out (where Go would have what the
    /// scan found).
    pub known_ssh_hosts: Option<String>,
    /// The session's SSH agent id for SSH remotes; default `default`.
    pub mount_ssh_sock: Option<String>,
    /// Progress name and cache settings of the op.
    pub op: OpOptions,
}

/// A git repository checkout (Go's `llb.Git`). `reference` is
/// `ref[:subdir]`, as after the `#` of a Dockerfile git URL.
///
/// The identifier is `git://` + host + path (+ `#ref[:subdir]`), the same
/// for an `https://`, `ssh://` or `user@host:path` remote of one
/// repository; the remote itself (without query or fragment) goes in the
/// `git.fullurl` attribute. A remote without a scheme that is not
/// `user@host:path` is taken as `https://`.
pub fn git(remote: &str, reference: &str, options: GitOptions) -> State {
    let (url, parsed) = match git_url::parse(remote) {
        Err(git_url::Error::UnknownProtocol) => {
            let url = format!("https://{remote}");
            let parsed = git_url::parse(&url);
            (url, parsed)
        }
        parsed => (remote.to_owned(), parsed),
    };
    let (url, parsed) = match parsed {
        Ok(parsed) => (parsed.remote.clone(), Some(parsed)),
        Err(_) => (url, None),
    };

    let (git_ref, subdir) = match reference.split_once(':') {
        Some((git_ref, subdir)) => {
            let subdir = path::clean(&format!("/{subdir}"));
            (git_ref, subdir.trim_start_matches('/').to_owned())
        }
        None => (reference, String::new()),
    };
    let subdir = options.subdir.clone().unwrap_or(subdir);

    let identifier = match &parsed {
        // Go keeps a remote it cannot parse as the id; the daemon then fails.
        None => url.clone(),
        Some(parsed) => {
            let mut id = format!("{}{}", parsed.host, path::clean(&format!("/{}", parsed.path)));
            if !git_ref.is_empty() || !subdir.is_empty() {
                id += "#";
                id += git_ref;
                if !subdir.is_empty() {
                    id += ":";
                    id += &subdir;
                }
            }
            id
        }
    };

    let mut attrs = BTreeMap::new();
    let mut caps = vec![];
    if options.keep_git_dir {
        attrs.insert("git.keepgitdir".to_owned(), "true".to_owned());
        caps.push("source.git.keepgitdir");
    }
    if !url.is_empty() {
        attrs.insert("git.fullurl".to_owned(), url.clone());
        caps.push("source.git.fullurl");
    }
    // Go always names the default secrets; only chosen ones need the
    // capability.
    let auth = options.auth_token_secret.is_some() || options.auth_header_secret.is_some();
    let token = options.auth_token_secret.clone().unwrap_or_else(|| "GIT_AUTH_TOKEN".to_owned());
    let header = options.auth_header_secret.clone().unwrap_or_else(|| "GIT_AUTH_HEADER".to_owned());
    if !token.is_empty() {
        attrs.insert("git.authtokensecret".to_owned(), token);
    }
    if !header.is_empty() {
        attrs.insert("git.authheadersecret".to_owned(), header);
    }
    if auth {
        caps.push("source.git.httpauth");
    }
    if parsed.as_ref().is_some_and(|p| p.scheme == "ssh") {
        if let Some(hosts) = options.known_ssh_hosts.as_ref().filter(|h| !h.is_empty()) {
            // Go's `KnownSSHHosts` ends every key with exactly one newline.
            attrs.insert("git.knownsshhosts".to_owned(), format!("{}\n", hosts.trim_end_matches('\n')));
        }
        caps.push("source.git.knownsshhosts");
        let sock = options.mount_ssh_sock.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "default".to_owned());
        attrs.insert("git.mountsshsock".to_owned(), sock);
        caps.push("source.git.mountsshsock");
    }
    if let Some(checksum) = options.checksum.filter(|c| !c.is_empty()) {
        attrs.insert("git.checksum".to_owned(), checksum);
        caps.push("source.git.checksum");
    }
    if options.skip_submodules {
        attrs.insert("git.skipsubmodules".to_owned(), "true".to_owned());
        caps.push("source.git.skipsubmodules");
    }
    if options.fetch_by_commit {
        attrs.insert("git.fetchbycommit".to_owned(), "true".to_owned());
        caps.push("source.git.fetchbycommit");
    }
    caps.push("source.git");
    let op = SourceOp {
        identifier: format!("git://{identifier}"),
        attrs,
        platform: None,
        caps,
        options: options.op,
        error: None,
    };
    State::from_output(Some(Output::new(Arc::new(op), 0)))
}

/// Pattern lists travel as a JSON array of strings, as Go's `json.Marshal`
/// writes them (serde_json escapes the same characters for plain text, and
/// Go's extra HTML escaping of `<`, `>`, `&` is applied here).
fn json_list(items: &[String]) -> String {
    let json = serde_json::to_string(items).expect("a list of strings serializes");
    json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

#[derive(Debug)]
struct SourceOp {
    identifier: String,
    attrs: BTreeMap<String, String>,
    /// Only set by options; image ops without one take the marshal-time
    /// platform, local ops never carry one.
    platform: Option<pb::Platform>,
    caps: Vec<&'static str>,
    options: OpOptions,
    error: Option<(String, ReferenceError)>,
}

impl Vertex for SourceOp {
    fn inputs(&self) -> Vec<Output> {
        Vec::new()
    }

    fn location(&self) -> Option<&Location> {
        self.options.location.as_ref()
    }

    fn to_op(&self, marshaller: &mut Marshaller) -> Result<(pb::Op, pb::OpMetadata), MarshalError> {
        if let Some((reference, source)) = &self.error {
            return Err(MarshalError::ImageReference { reference: reference.clone(), source: source.clone() });
        }
        if self.identifier.is_empty() {
            return Err(MarshalError::EmptySource);
        }
        let mut op = marshaller.base_op(self.platform.as_ref());
        // Only image sources depend on the platform (Go's
        // `platformSpecificSource`); a folder is the same for every one.
        if !self.identifier.starts_with("docker-image://") && !self.identifier.starts_with("oci-layout://") {
            op.platform = None;
        }
        op.op =
            Some(pb::op::Op::Source(pb::SourceOp { identifier: self.identifier.clone(), attrs: self.attrs.clone() }));
        Ok((op, self.options.metadata(&self.caps)))
    }
}
