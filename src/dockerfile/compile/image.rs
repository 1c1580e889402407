//! The image config a Dockerfile build returns (`containerimage.config`),
//! shaped and encoded the way the daemon's frontend writes it: Go's
//! `DockerOCIImage` marshalled by `encoding/json`.
//!
//! The exporter re-sorts the config's top-level keys but keeps each value's
//! bytes, so the order of fields inside `config`, the `omitempty` rules and
//! Go's escaping all reach the image digest; these types follow Go's struct
//! declarations field by field for that reason. A base image's config is
//! read into the same types, which drops what Go's types do not know (as the
//! frontend does).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// `history[].comment` of every step the frontend records.
pub(crate) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Go's `DockerOCIImage`: an OCI image config with Docker's extensions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "go_time")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, rename = "os.version", skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    #[serde(default, rename = "os.features", skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    #[serde(default)]
    pub rootfs: RootFs,
    /// Shared entries: a stage starts with its base's whole history, so a
    /// long chain of stages would otherwise copy it over and over.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub history: Vec<std::sync::Arc<History>>,
    #[serde(default, deserialize_with = "null_default")]
    pub config: ImageConfig,
}

/// Go's `RootFS` (the exporter writes its own).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<String>,
}

/// One `history` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "go_time")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

/// Go's `DockerOCIImageConfig` (OCI `ImageConfig` + Docker's extensions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_default")]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_default")]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub args_escaped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub on_build: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub shell: Vec<String>,
}

/// Go's `struct{}` map values (`ExposedPorts`, `Volumes`): `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Go's `HealthcheckConfig`; durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_false(value: &bool) -> bool {
    !value
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// `null` (Go's nil slice or map) reads as empty.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A timestamp as Go writes it back after reading it (RFC 3339 with
/// nanoseconds, trailing zeros trimmed, `Z` for UTC), so a base image's
/// history survives the round trip byte for byte.
fn go_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    Ok(Some(match chrono::DateTime::parse_from_rfc3339(&text) {
        Ok(time) => format_go_time(&time),
        Err(_) => text,
    }))
}

/// Go's `time.Time` JSON form (`RFC3339Nano`).
pub(crate) fn format_go_time(time: &chrono::DateTime<chrono::FixedOffset>) -> String {
    let mut out = time.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = time.timestamp_subsec_nanos();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    let offset = time.offset().local_minus_utc();
    if offset == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let offset = offset.abs();
        out.push_str(&format!("{sign}{:02}:{:02}", offset / 3600, (offset % 3600) / 60));
    }
    out
}

/// The epoch (`SOURCE_DATE_EPOCH`) in Go's JSON time form.
pub(crate) fn epoch_time(seconds: i64) -> String {
    let time = chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default().fixed_offset();
    format_go_time(&time)
}

/// `value` as Go's `json.Marshal` writes it.
pub(crate) fn go_json<T: Serialize>(value: &T) -> Vec<u8> {
    crate::gojson::marshal(value)
}

/// The config of `FROM scratch` for a platform (Go's `emptyImage`).
pub(crate) fn empty_image(platform: &crate::proto::pb::Platform) -> Image {
    let mut image = Image {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        os_version: platform.os_version.clone(),
        os_features: platform.os_features.clone(),
        variant: platform.variant.clone(),
        rootfs: RootFs { kind: "layers".into(), diff_ids: Vec::new() },
        ..Default::default()
    };
    image.config.working_dir = "/".into();
    if platform.os != "windows" {
        image.config.env = vec![format!("PATH={DEFAULT_PATH}")];
    }
    image
}

/// `PATH` for Linux images that set none (Go's `system.DefaultPathEnv`).
pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Image {
    /// Appends a history entry (Go's `commitToHistory`); `with_layer` for
    /// steps that change the filesystem, `buildkit` for the ones BuildKit ran.
    pub(crate) fn commit(&mut self, message: String, with_layer: bool, buildkit: bool, epoch: Option<&str>) {
        let created_by = if buildkit { format!("{message} # buildkit") } else { message };
        self.history.push(std::sync::Arc::new(History {
            created: epoch.map(str::to_owned),
            created_by,
            author: String::new(),
            comment: HISTORY_COMMENT.into(),
            empty_layer: !with_layer,
        }));
    }

    /// Sets `key=value` in `Env`, in place when the key is there (Go's `addEnv`).
    pub(crate) fn add_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self.config.env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(existing) => *existing = entry,
            None => self.config.env.push(entry),
        }
    }
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub(crate) fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

pub(crate) use crate::dockerfile::parser::go_quote;

/// Go's `%v` of a string slice: `[a b]`.
pub(crate) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// A duration Go's `time.ParseDuration` refuses, in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    #[error("time: invalid duration {}", go_quote(.0.as_str()))]
    Invalid(String),
    #[error("time: missing unit in duration {}", go_quote(.0.as_str()))]
    MissingUnit(String),
    #[error("time: unknown unit {} in duration {}", go_quote(.unit.as_str()), go_quote(.text.as_str()))]
    UnknownUnit { unit: String, text: String },
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub(crate) fn parse_go_duration(text: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(DurationError::MissingUnit(text.to_owned())),
            other => return Err(DurationError::UnknownUnit { unit: other.to_owned(), text: text.to_owned() }),
        };
        total += value * scale;
    }
    // Go refuses a duration past int64 nanoseconds (about 292 years).
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let total = total.round() as i64;
    Ok(if negative { -total } else { total })
}

/// Go's `time.Duration.String()` for a duration in nanoseconds.
pub(crate) fn format_go_duration(nanos: i64) -> String {
    let text = crate::units::go_duration(std::time::Duration::from_nanos(nanos.unsigned_abs()));
    if nanos < 0 {
        format!("-{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_print() {
        assert_eq!(parse_go_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_go_duration("5").unwrap_err().to_string(), "time: missing unit in duration \"5\"");
        assert_eq!(parse_go_duration("x").unwrap_err(), DurationError::Invalid("x".into()));
        assert_eq!(parse_go_duration("1y").unwrap_err().to_string(), "time: unknown unit \"y\" in duration \"1y\"");
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(5_000_000_000), "5s");
        assert_eq!(format_go_duration(90_000_000_000), "1m30s");
        assert_eq!(format_go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(100_000_000), "100ms");
    }

    #[test]
    fn json_is_escaped_and_ordered_as_go_writes_it() {
        let mut image = empty_image(&crate::proto::pb::Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Default::default()
        });
        image.config.labels.insert("a".into(), "<b&c>".into());
        image.config.cmd = vec!["sh".into()];
        image.config.args_escaped = true;
        let text = String::from_utf8(go_json(&image.config)).unwrap();
        assert_eq!(
            text,
            r#"{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/","Labels":{"a":"\u003cb\u0026c\u003e"},"ArgsEscaped":true}"#
        );
        assert_eq!(
            go_quote_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
        assert_eq!(epoch_time(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_base_config_keeps_only_what_go_knows_and_normalizes_times() {
        let base = br#"{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05.500000000+00:00",
            "container_config":{"Hostname":"x"},"config":{"Env":["A=1"],"Hostname":"","Cmd":null},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created":"2024-01-02T03:04:05Z","created_by":"x"}]}"#;
        let image: Image = serde_json::from_slice(base).unwrap();
        assert_eq!(image.created.as_deref(), Some("2024-01-02T03:04:05.5Z"));
        assert_eq!(image.config.env, ["A=1"]);
        let text = String::from_utf8(go_json(&image)).unwrap();
        assert!(!text.contains("container_config") && !text.contains("Hostname"), "{text}");
    }
}
