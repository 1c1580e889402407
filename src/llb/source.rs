//! Source ops: where a graph's filesystems come from (Go's `source.go`).
//!
//! [`image`] pulls a registry image (`docker-image://` with the reference
//! normalized as Go does), [`local`] reads a folder the client sends over the
//! session (`local://`), and [`scratch`] is the empty filesystem, which is no
//! op at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::proto::pb;

use super::marshal::Marshaller;
use super::reference::{self, ReferenceError};
use super::state::{normalize_platform, OpOptions, Output, State, Vertex};
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
    let op = SourceOp {
        identifier,
        attrs: BTreeMap::new(),
        platform: platform.clone(),
        caps: vec!["source.image"],
        options: options.op,
        error,
    };
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
