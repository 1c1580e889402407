//! Build cache options: what a build imports (`--cache-from`) and exports
//! (`--cache-to`), in buildx's CSV syntax, as the daemon takes them in
//! `SolveRequest.cache`.

use std::collections::BTreeMap;

pub mod env;
pub mod layout;
pub mod local;
pub mod mount_scan;
pub mod mounts;

/// One cache import or export, as the daemon takes it: an importer or
/// exporter type and its attributes. `Debug` hides credentials (see
/// [`mod@env`]), so an entry can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// `registry`, `inline`, `gha`, `s3`, `azblob`.
    pub kind: String,
    /// The type's attributes (`ref`, `mode`, ...).
    pub attrs: BTreeMap<String, String>,
}

impl std::fmt::Debug for CacheEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attrs: BTreeMap<&str, &str> = self
            .attrs
            .iter()
            .map(|(key, value)| {
                let shown = if env::SECRET_ATTRS.contains(&key.as_str()) { "<hidden>" } else { value.as_str() };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("CacheEntry").field("kind", &self.kind).field("attrs", &attrs).finish()
    }
}

/// A cache option that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cache option {spec:?}: {problem}")]
pub struct CacheSpecError {
    /// The option as given.
    pub spec: String,
    /// What is wrong with it.
    pub problem: CacheProblem,
}

/// What is wrong with one cache option (the words of the value only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheProblem {
    #[error(transparent)]
    Csv(crate::output::OutputProblem),
    #[error("{0:?} is not KEY=VALUE")]
    NotKeyValue(String),
    #[error("type= is missing")]
    MissingType,
    #[error("type=registry needs ref=")]
    MissingRef,
    #[error("unknown cache type (registry, local, inline, gha, s3, azblob)")]
    UnknownType(String),
    /// `src=` (import) or `dest=` (export) of `type=local` is missing.
    #[error("type=local needs {0}=DIR")]
    MissingDir(&'static str),
    #[error("{0}= is empty")]
    Empty(&'static str),
    #[error("unknown attribute {key:?} for type=local (expected {expected})", expected = .known.join(", "))]
    UnknownAttribute { key: String, known: &'static [&'static str] },
    #[error("mode={0:?} is not min or max")]
    Mode(String),
    #[error("{0:?} is not a sha256 digest")]
    Digest(String),
    #[error("mounts= is empty (true, false, or cache ids separated by commas)")]
    EmptyMounts,
}

/// Whether a cache entry is read before the build or written after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheDirection {
    /// `--cache-from`
    Import,
    /// `--cache-to`
    Export,
}

/// Attributes of `type=local` that fbuild acts on itself and does not send
/// to the daemon.
pub(crate) const CLIENT_ATTRS: &[&str] = &["mounts", "helper-image"];

/// Cache imports as the Dockerfile frontend reads them from its
/// `cache-imports` option: JSON with Go's field names, as buildctl's
/// `client/solve.go` sends it.
pub(crate) fn imports_option(imports: &[CacheEntry]) -> String {
    let json: Vec<serde_json::Value> =
        imports.iter().map(|c| serde_json::json!({"Type": c.kind, "Attrs": c.attrs})).collect();
    serde_json::Value::Array(json).to_string()
}

impl CacheEntry {
    /// A registry cache at `reference`.
    pub fn registry(reference: impl Into<String>) -> CacheEntry {
        CacheEntry { kind: "registry".into(), attrs: [("ref".to_string(), reference.into())].into() }
    }

    /// A local cache folder: read from `src` when importing, written to
    /// `dest` when exporting.
    pub fn local(direction: CacheDirection, dir: impl Into<String>) -> CacheEntry {
        let key = match direction {
            CacheDirection::Import => "src",
            CacheDirection::Export => "dest",
        };
        CacheEntry { kind: "local".into(), attrs: [(key.to_string(), dir.into())].into() }
    }

    /// Parses buildx's syntax: CSV `type=...,key=value`; a bare value is a
    /// registry reference. A field that holds a comma is quoted, as in CSV
    /// (`"mounts=pip,apt"`).
    pub fn parse(spec: &str, direction: CacheDirection) -> Result<CacheEntry, CacheSpecError> {
        let invalid = |problem: CacheProblem| CacheSpecError { spec: spec.to_string(), problem };
        let fields = crate::output::csv_fields(spec).map_err(|problem| invalid(CacheProblem::Csv(problem)))?;
        if fields.len() == 1 && !fields[0].contains('=') {
            return Ok(CacheEntry::registry(fields[0].clone()));
        }
        let mut kind = None;
        let mut attrs = BTreeMap::new();
        for field in fields {
            let (key, value) =
                field.split_once('=').ok_or_else(|| invalid(CacheProblem::NotKeyValue(field.clone())))?;
            if key == "type" {
                kind = Some(value.to_string());
            } else {
                attrs.insert(key.to_string(), value.to_string());
            }
        }
        let kind = kind.ok_or_else(|| invalid(CacheProblem::MissingType))?;
        match kind.as_str() {
            "registry" if !attrs.contains_key("ref") => Err(invalid(CacheProblem::MissingRef)),
            "local" => {
                check_local(&attrs, direction).map_err(invalid)?;
                Ok(CacheEntry { kind, attrs })
            }
            "registry" | "inline" | "gha" | "s3" | "azblob" => Ok(CacheEntry { kind, attrs }),
            _ => Err(invalid(CacheProblem::UnknownType(kind))),
        }
    }

    /// The folder of a `type=local` entry.
    pub fn local_dir(&self) -> Option<&str> {
        if self.kind != "local" {
            return None;
        }
        self.attrs.get("dest").or_else(|| self.attrs.get("src")).map(String::as_str)
    }
}

/// The attributes `type=local` takes (buildx's, plus fbuild's `mounts` and
/// `helper-image`), checked before anything is sent.
fn check_local(attrs: &BTreeMap<String, String>, direction: CacheDirection) -> Result<(), CacheProblem> {
    let (dir_key, known): (&'static str, &'static [&'static str]) = match direction {
        CacheDirection::Import => ("src", &["src", "tag", "digest", "mounts", "helper-image"]),
        CacheDirection::Export => (
            "dest",
            &[
                "dest",
                "tag",
                "mode",
                "compression",
                "compression-level",
                "force-compression",
                "oci-mediatypes",
                "image-manifest",
                "ignore-error",
                "mounts",
                "helper-image",
            ],
        ),
    };
    match attrs.get(dir_key) {
        None => return Err(CacheProblem::MissingDir(dir_key)),
        Some(dir) if dir.is_empty() => return Err(CacheProblem::Empty(dir_key)),
        Some(_) => {}
    }
    for key in attrs.keys() {
        if !known.contains(&key.as_str()) {
            return Err(CacheProblem::UnknownAttribute { key: key.clone(), known });
        }
    }
    if let Some(mode) = attrs.get("mode") {
        if mode != "min" && mode != "max" {
            return Err(CacheProblem::Mode(mode.clone()));
        }
    }
    if let Some(tag) = attrs.get("tag") {
        if tag.is_empty() {
            return Err(CacheProblem::Empty("tag"));
        }
    }
    if let Some(digest) = attrs.get("digest") {
        layout::BlobDigest::parse(digest).map_err(|_| CacheProblem::Digest(digest.clone()))?;
    }
    if let Some(mounts) = attrs.get("mounts") {
        if mounts.is_empty() {
            return Err(CacheProblem::EmptyMounts);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_specs_follow_buildx() {
        use CacheDirection::{Export, Import};
        let bare = CacheEntry::parse("registry:5000/app:cache", Import).unwrap();
        assert_eq!(bare, CacheEntry::registry("registry:5000/app:cache"));
        let registry = CacheEntry::parse("type=registry,ref=r/app:cache,mode=max", Export).unwrap();
        assert_eq!(registry.kind, "registry");
        assert_eq!(registry.attrs["mode"], "max");
        let local = CacheEntry::parse("type=local,dest=/tmp/c,mode=max,tag=main,\"mounts=pip,apt\"", Export).unwrap();
        assert_eq!(local.local_dir(), Some("/tmp/c"));
        assert_eq!(local.attrs["mounts"], "pip,apt");
        assert_eq!(CacheEntry::parse("type=local,src=c,tag=pr", Import).unwrap().local_dir(), Some("c"));
        for (bad, direction, problem) in [
            ("type=registry", Import, "type=registry needs ref="),
            ("type=nope,ref=x", Import, "unknown cache type"),
            ("mode=max", Export, "type= is missing"),
            ("type=local", Export, "type=local needs dest=DIR"),
            ("type=local,dest=c", Import, "type=local needs src=DIR"),
            ("type=local,dest=c,colour=red", Export, "unknown attribute \"colour\" for type=local"),
            ("type=local,dest=c,mode=most", Export, "mode=\"most\" is not min or max"),
            ("type=local,src=c,digest=sha256:zz", Import, "\"sha256:zz\" is not a sha256 digest"),
        ] {
            let err = CacheEntry::parse(bad, direction).unwrap_err();
            assert!(err.to_string().starts_with(&format!("invalid cache option {bad:?}: {problem}")), "{err}");
        }
    }
}
