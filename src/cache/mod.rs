//! Build cache options: what a build imports (`--cache-from`) and exports
//! (`--cache-to`), in buildx's CSV syntax, as the daemon takes them in
//! `SolveRequest.cache`.

use std::collections::BTreeMap;

pub mod layout;

/// One cache import or export, as the daemon takes it: an importer or
/// exporter type and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// `registry`, `inline`, `gha`, `s3`, `azblob`.
    pub kind: String,
    /// The type's attributes (`ref`, `mode`, ...).
    pub attrs: BTreeMap<String, String>,
}

/// A cache option that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cache option {spec:?}: {problem}")]
pub struct CacheSpecError {
    /// The option as given.
    pub spec: String,
    /// What is wrong with it.
    pub problem: String,
}

impl CacheEntry {
    /// A registry cache at `reference`.
    pub fn registry(reference: impl Into<String>) -> CacheEntry {
        CacheEntry { kind: "registry".into(), attrs: [("ref".to_string(), reference.into())].into() }
    }

    /// Parses buildx's syntax: CSV `type=...,key=value`; a bare value is a
    /// registry reference.
    pub fn parse(spec: &str) -> Result<CacheEntry, CacheSpecError> {
        let invalid = |problem: String| CacheSpecError { spec: spec.to_string(), problem };
        let fields = crate::output::csv_fields(spec).map_err(|problem| invalid(problem.to_string()))?;
        if fields.len() == 1 && !fields[0].contains('=') {
            return Ok(CacheEntry::registry(fields[0].clone()));
        }
        let mut kind = None;
        let mut attrs = BTreeMap::new();
        for field in fields {
            let (key, value) = field.split_once('=').ok_or_else(|| invalid(format!("{field:?} is not KEY=VALUE")))?;
            if key == "type" {
                kind = Some(value.to_string());
            } else {
                attrs.insert(key.to_string(), value.to_string());
            }
        }
        let kind = kind.ok_or_else(|| invalid("type= is missing".into()))?;
        match kind.as_str() {
            "registry" if !attrs.contains_key("ref") => Err(invalid("type=registry needs ref=".into())),
            // A local cache folder is read and written through a content store
            // served on the session, which fbuild does not serve yet.
            "local" => Err(invalid("type=local cache is not supported yet; use type=registry or type=inline".into())),
            "registry" | "inline" | "gha" | "s3" | "azblob" => Ok(CacheEntry { kind, attrs }),
            _ => Err(invalid("unknown cache type (registry, local, inline, gha, s3, azblob)".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_specs_follow_buildx() {
        let bare = CacheEntry::parse("registry:5000/app:cache").unwrap();
        assert_eq!(bare, CacheEntry::registry("registry:5000/app:cache"));
        let registry = CacheEntry::parse("type=registry,ref=r/app:cache,mode=max").unwrap();
        assert_eq!(registry.kind, "registry");
        assert_eq!(registry.attrs["mode"], "max");
        for bad in ["type=registry", "type=nope,ref=x", "type=local,dest=/tmp/c", "mode=max"] {
            let err = CacheEntry::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with(&format!("invalid cache option {bad:?}: ")), "{err}");
        }
    }
}
