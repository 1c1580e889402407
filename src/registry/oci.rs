//! The OCI types `imagetools` writes, with the JSON Go writes for them.
//!
//! An index's digest is the sha256 of its bytes, so an index made here has
//! buildx's digest only if its bytes are Go's: the fields in the order of
//! `image-spec`'s structs (not oci-spec's), maps with sorted keys, empty
//! optional fields left out, two-space `MarshalIndent` with Go's escaping
//! (`crate::gojson`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// Whether `media_type` is an index or a manifest list.
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == INDEX || media_type == DOCKER_LIST
}

/// `ocispecs.Platform`, in its field order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Platform {
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "String::is_empty")]
    pub(crate) os_version: String,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) variant: String,
}

impl Platform {
    /// containerd's `platforms.Format`: `os/arch[/variant]`, `unknown` for
    /// missing parts.
    pub(crate) fn format(&self) -> String {
        let part = |s: &str| if s.is_empty() { "unknown".to_owned() } else { s.to_owned() };
        let mut out = format!("{}/{}", part(&self.os), part(&self.architecture));
        if !self.variant.is_empty() {
            out.push('/');
            out.push_str(&self.variant);
        }
        out
    }

    /// containerd's `platforms.Normalize` for the architectures images use.
    pub(crate) fn normalize(mut self) -> Platform {
        self.os = self.os.to_lowercase();
        let (arch, variant) = match (self.architecture.to_lowercase().as_str(), self.variant.as_str()) {
            ("i386", _) => ("386".to_owned(), String::new()),
            ("x86_64" | "x86-64" | "amd64", v) => {
                ("amd64".to_owned(), if v == "v1" { String::new() } else { v.to_owned() })
            }
            ("aarch64" | "arm64", v) => {
                ("arm64".to_owned(), if v == "8" || v == "v8" { String::new() } else { v.to_owned() })
            }
            ("armhf", _) => ("arm".to_owned(), "v7".to_owned()),
            ("armel", _) => ("arm".to_owned(), "v6".to_owned()),
            ("arm", v) => (
                "arm".to_owned(),
                match v {
                    "" | "7" => "v7".to_owned(),
                    "5" | "6" | "8" => format!("v{v}"),
                    v => v.to_owned(),
                },
            ),
            (arch, v) => (arch.to_owned(), v.to_owned()),
        };
        self.architecture = arch;
        self.variant = variant;
        self
    }
}

/// `ocispecs.Descriptor`, in its field order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) urls: Vec<String>,
    /// Go's `omitempty` leaves out an empty map as well as a missing one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) artifact_type: Option<String>,
}

/// `ocispecs.Index`, in its field order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    pub(crate) schema_version: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) media_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) artifact_type: String,
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
}

/// The parts of an image manifest `imagetools` reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) config: Option<Descriptor>,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
}

/// `json.MarshalIndent(value, "", "  ")` as Go writes it.
pub(crate) fn go_marshal_indent<T: Serialize>(value: &T) -> Vec<u8> {
    crate::gojson::marshal_indent(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_written_as_go_writes_it() {
        let index = Index {
            schema_version: 2,
            media_type: INDEX.into(),
            manifests: vec![Descriptor {
                media_type: MANIFEST.into(),
                digest: "sha256:ab".into(),
                size: 475,
                platform: Some(Platform {
                    architecture: "arm".into(),
                    os: "linux".into(),
                    variant: "v7".into(),
                    ..Default::default()
                }),
                annotations: BTreeMap::from([("b".into(), "<&>".into()), ("a".into(), "1".into())]),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = String::from_utf8(go_marshal_indent(&index)).unwrap();
        let expected = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:ab",
      "size": 475,
      "annotations": {
        "a": "1",
        "b": "\u003c\u0026\u003e"
      },
      "platform": {
        "architecture": "arm",
        "os": "linux",
        "variant": "v7"
      }
    }
  ]
}"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn platforms_normalize_and_format_as_containerd() {
        let p =
            Platform { architecture: "aarch64".into(), os: "Linux".into(), variant: "v8".into(), ..Default::default() };
        assert_eq!(p.normalize().format(), "linux/arm64");
        let p = Platform { architecture: "arm".into(), os: "linux".into(), ..Default::default() };
        assert_eq!(p.normalize().format(), "linux/arm/v7");
        assert_eq!(Platform::default().format(), "unknown/unknown");
    }
}
