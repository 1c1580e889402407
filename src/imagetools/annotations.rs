//! `--annotation` values as buildx parses them (`util/buildflags`
//! `ParseAnnotations`): `[TYPES:]KEY=VALUE`, where TYPES is a comma list of
//! `index`, `manifest`, `manifest-descriptor`, `index-descriptor`, each with
//! an optional `[PLATFORM]`.

use std::collections::BTreeMap;

/// Where an annotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum AnnotationKind {
    /// No type given.
    Unspecified,
    Manifest,
    ManifestDescriptor,
    Index,
    IndexDescriptor,
}

impl AnnotationKind {
    /// BuildKit's name of the type (`exptypes.AnnotationIndex` ...).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AnnotationKind::Unspecified => "",
            AnnotationKind::Manifest => "manifest",
            AnnotationKind::ManifestDescriptor => "manifest-descriptor",
            AnnotationKind::Index => "index",
            AnnotationKind::IndexDescriptor => "index-descriptor",
        }
    }
}

/// One annotation's key: its type, platform and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct AnnotationKey {
    pub(crate) kind: AnnotationKind,
    /// `os/arch[/variant]` as given, for the manifest types.
    pub(crate) platform: Option<String>,
    pub(crate) key: String,
}

/// A `--annotation` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnotationError {
    /// No `=`.
    #[error("failed to parse annotations: invalid annotation {0:?}, expected key=value")]
    NoValue(String),
    /// A type that is not one of the four.
    #[error("failed to parse annotations: invalid annotation type {0:?}")]
    BadType(String),
    /// A platform on a type that takes none.
    #[error("failed to parse annotations: platform specifiers are not supported for {0:?} annotations")]
    PlatformNotAllowed(String),
}

/// Parses every value; a later value for the same key wins, as in buildx's map.
pub(crate) fn parse_annotations(values: &[String]) -> Result<BTreeMap<AnnotationKey, String>, AnnotationError> {
    let mut out = BTreeMap::new();
    for value in values {
        if value.is_empty() {
            continue;
        }
        let (key, val) = value.split_once('=').ok_or_else(|| AnnotationError::NoValue(value.clone()))?;
        let Some((types, name)) = key.split_once(':') else {
            out.insert(
                AnnotationKey { kind: AnnotationKind::Unspecified, platform: None, key: key.to_owned() },
                val.to_owned(),
            );
            continue;
        };
        for type_and_platform in types.split(',') {
            let (kind_text, platform) = match type_and_platform.split_once('[') {
                Some((kind, rest)) => {
                    let platform = rest.strip_suffix(']').filter(|p| {
                        !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'-'))
                    });
                    match platform {
                        Some(p) => (kind, Some(p.to_owned())),
                        None => return Err(AnnotationError::BadType(type_and_platform.to_owned())),
                    }
                }
                None => (type_and_platform, None),
            };
            if kind_text.is_empty() || !kind_text.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                return Err(AnnotationError::BadType(type_and_platform.to_owned()));
            }
            let kind = match kind_text {
                "manifest" => AnnotationKind::Manifest,
                "manifest-descriptor" => AnnotationKind::ManifestDescriptor,
                "index" => AnnotationKind::Index,
                "index-descriptor" => AnnotationKind::IndexDescriptor,
                _ => return Err(AnnotationError::BadType(kind_text.to_owned())),
            };
            if platform.is_some() && matches!(kind, AnnotationKind::Index | AnnotationKind::IndexDescriptor) {
                return Err(AnnotationError::PlatformNotAllowed(kind_text.to_owned()));
            }
            out.insert(AnnotationKey { kind, platform: platform.clone(), key: name.to_owned() }, val.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_platforms_and_bare_keys() {
        let parsed = parse_annotations(&[
            "index,manifest-descriptor[linux/amd64]:org.opencontainers.image.title=app".into(),
            "plain=1".into(),
        ])
        .unwrap();
        let kinds: Vec<_> = parsed.keys().map(|k| (k.kind, k.platform.clone())).collect();
        assert_eq!(
            kinds,
            [
                (AnnotationKind::Unspecified, None),
                (AnnotationKind::ManifestDescriptor, Some("linux/amd64".into())),
                (AnnotationKind::Index, None)
            ]
        );
        assert!(matches!(parse_annotations(&["x".into()]), Err(AnnotationError::NoValue(_))));
        assert!(matches!(parse_annotations(&["bogus:k=v".into()]), Err(AnnotationError::BadType(_))));
        assert!(matches!(
            parse_annotations(&["index[linux/amd64]:k=v".into()]),
            Err(AnnotationError::PlatformNotAllowed(_))
        ));
    }
}
