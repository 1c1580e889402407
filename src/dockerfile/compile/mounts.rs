//! `RUN --mount=...` values, read the way the frontend reads them
//! (`instructions/commands_runmount.go`): CSV fields, each value expanded
//! with the stage's variables, the same defaults and the same errors.

use crate::dockerfile::shell::{Env, ExpandError, Lexer};
use crate::llb::{Chown, FileAction, Mkdir, OpOptions, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountKind {
    fn name(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Cache => "cache",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Secret => "secret",
            MountKind::Ssh => "ssh",
        }
    }
}

/// A `--mount` value the frontend refuses, in the frontend's words
/// (`parseMount`), which the tests compare with the daemon's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// The value is not one CSV record (Go's `io.EOF` reads "EOF").
    #[error("failed to parse csv mounts: {0}")]
    Csv(String),
    /// A field's value does not expand.
    #[error(transparent)]
    Expand(#[from] ExpandError),
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    #[error("unsupported mount type {0:?}")]
    UnsupportedType(String),
    #[error("unsupported sharing value {0:?}")]
    UnsupportedSharing(String),
    /// A boolean or size that does not read.
    #[error("invalid value for {key}: {value}")]
    InvalidValue { key: String, value: String },
    /// `mode`, `uid` or `gid` that is not a number.
    #[error("invalid value {value} for {key}")]
    InvalidNumber { key: &'static str, value: String },
    #[error("unexpected key '{key}' for mount type '{kind}'")]
    KeyNotForType { key: String, kind: &'static str },
    #[error("unexpected key '{key}' in '{field}'{}", similar.map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownKey { key: String, field: String, similar: Option<&'static str> },
    #[error("{option} not allowed for {kind:?} type mounts")]
    OptionNotForType { option: &'static str, kind: &'static str },
    #[error("invalid cache sharing set for {0} mount")]
    SharingNotForType(&'static str),
    /// A secret mount's own checks (`from`, `sharing`, `source`/`id`).
    #[error("{0}")]
    Secret(&'static str),
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunMount {
    pub kind: MountKind,
    pub from: String,
    pub source: String,
    pub target: String,
    pub readonly: bool,
    pub size: i64,
    pub id: String,
    pub sharing: String,
    pub required: bool,
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

const ALL_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// The `from=` of a mount without expanding anything: stages are linked
/// before variables are known, as in the frontend (`detectRunMount`).
pub(crate) fn mount_from(value: &str) -> Option<String> {
    let fields = csv_fields(value).ok()?;
    fields.iter().find_map(|field| {
        let (key, value) = field.split_once('=')?;
        key.eq_ignore_ascii_case("from").then(|| value.to_string())
    })
}

/// Parses one `--mount` value, expanding each field's value with `env`.
pub(crate) fn parse_mount(value: &str, lexer: &Lexer, env: &dyn Env) -> Result<RunMount, MountError> {
    let fields = csv_fields(value).map_err(MountError::Csv)?;
    let mut m = RunMount {
        kind: MountKind::Bind,
        from: String::new(),
        source: String::new(),
        target: String::new(),
        readonly: false,
        size: 0,
        id: String::new(),
        sharing: String::new(),
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut readonly_auto = true;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((key, value)) => (key.to_ascii_lowercase(), Some(value)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    readonly_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    readonly_auto = false;
                }
                "required" if matches!(m.kind, MountKind::Secret | MountKind::Ssh) => m.required = true,
                "required" => return Err(MountError::KeyNotForType { key, kind: m.kind.name() }),
                _ => return Err(MountError::NotKeyValue(field.clone())),
            }
            continue;
        };
        let value = lexer.expand(value, env)?;
        let invalid = |value: &str| MountError::InvalidValue { key: key.clone(), value: value.to_owned() };
        let parse_bool = |value: &str| crate::gostrconv::parse_bool(value).ok_or_else(|| invalid(value));
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    _ => return Err(MountError::UnsupportedType(value)),
                }
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.readonly = parse_bool(&value)?;
                readonly_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&value)?;
                readonly_auto = false;
            }
            "required" if matches!(m.kind, MountKind::Secret | MountKind::Ssh) => m.required = parse_bool(&value)?,
            "size" if m.kind == MountKind::Tmpfs => {
                m.size = crate::units::ram_in_bytes(&value).ok_or_else(|| invalid(&value))?
            }
            "required" | "size" => return Err(MountError::KeyNotForType { key, kind: m.kind.name() }),
            "id" => m.id = value,
            "sharing" => {
                let lower = value.to_ascii_lowercase();
                if !["shared", "private", "locked"].contains(&lower.as_str()) {
                    return Err(MountError::UnsupportedSharing(value));
                }
                m.sharing = lower;
            }
            "mode" => {
                let number = u32::from_str_radix(&value, 8);
                m.mode = Some(number.map_err(|_| MountError::InvalidNumber { key: "mode", value })?)
            }
            "uid" => m.uid = Some(value.parse().map_err(|_| MountError::InvalidNumber { key: "uid", value })?),
            "gid" => m.gid = Some(value.parse().map_err(|_| MountError::InvalidNumber { key: "gid", value })?),
            "env" => m.env = Some(value),
            _ => {
                let similar = ALL_KEYS.iter().copied().find(|k| super::super::instructions::similar(k, &key));
                return Err(MountError::UnknownKey { key, field: field.clone(), similar });
            }
        }
    }
    if !matches!(m.kind, MountKind::Secret | MountKind::Ssh | MountKind::Cache) {
        for (name, set) in [("mode", m.mode.is_some()), ("uid", m.uid.is_some()), ("gid", m.gid.is_some())] {
            if set {
                return Err(MountError::OptionNotForType { option: name, kind: m.kind.name() });
            }
        }
    }
    if readonly_auto {
        m.readonly = !matches!(m.kind, MountKind::Cache | MountKind::Tmpfs);
    }
    if m.kind == MountKind::Secret {
        if !m.from.is_empty() {
            return Err(MountError::Secret("secret mount should not have a from"));
        }
        if !m.sharing.is_empty() {
            return Err(MountError::Secret("secret mount should not define sharing"));
        }
        if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
            return Err(MountError::Secret("invalid secret mount. one of source, target required"));
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err(MountError::Secret("both source and id can't be set"));
        }
    }
    if !m.sharing.is_empty() && m.kind != MountKind::Cache {
        return Err(MountError::SharingNotForType(m.kind.name()));
    }
    Ok(m)
}

/// A cache mount's id as the Dockerfile frontend files it with the daemon:
/// its namespace (`BUILDKIT_CACHE_MOUNT_NS`, empty by default), `/`, then
/// the id.
pub(crate) fn cache_id(namespace: &str, id: &str) -> String {
    format!("{namespace}/{id}")
}

/// Where in its base a cache mount that sets `uid`, `gid` or `mode` starts.
pub(crate) const OWNED_CACHE_DIR: &str = "/cache";

/// The base of a cache mount that sets `uid`, `gid` or `mode`: the folder
/// [`OWNED_CACHE_DIR`] made with them on `source`, as the Dockerfile
/// frontend makes it. Carried cache mounts (`cache::mounts`) are built on
/// it too, so theirs and a build's are one cache.
pub(crate) fn owned_cache_base(
    source: &State,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
    options: OpOptions,
) -> State {
    let dir = Mkdir::new(OWNED_CACHE_DIR, mode.unwrap_or(0o755)).owner(Chown::ids(uid.unwrap_or(0), gid.unwrap_or(0)));
    source.file_with(FileAction::from(dir), options)
}

/// One CSV record as the frontend reads it (`csvvalue.Fields`), through
/// the reader `--output` and the other flags use; the frontend's callers
/// print the reader's error after their own words, and an empty value is
/// Go's `io.EOF` there ("failed to parse csv mounts: EOF").
pub(crate) fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    crate::output::csv_fields(value).map_err(|problem| match problem {
        crate::output::OutputProblem::Empty => "EOF".to_owned(),
        crate::output::OutputProblem::Csv(message) => message,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(value: &str) -> Result<RunMount, MountError> {
        let env: BTreeMap<String, String> = [("DIR".to_string(), "/root/.cache".to_string())].into();
        parse_mount(value, &Lexer::new('\\'), &env)
    }

    #[test]
    fn mounts_get_the_frontends_defaults() {
        let cache = parse("type=cache,target=${DIR}/pip,sharing=LOCKED,uid=1000,mode=0700").unwrap();
        assert_eq!((cache.kind, cache.target.as_str(), cache.readonly), (MountKind::Cache, "/root/.cache/pip", false));
        assert_eq!((cache.sharing.as_str(), cache.uid, cache.mode), ("locked", Some(1000), Some(0o700)));
        let bind = parse("target=/src,from=deps,source=/app").unwrap();
        assert_eq!((bind.kind, bind.readonly, bind.from.as_str()), (MountKind::Bind, true, "deps"));
        assert!(!parse("type=bind,target=/src,rw").unwrap().readonly);
        assert_eq!(parse("type=tmpfs,target=/t,size=64m").unwrap().size, 64 << 20);
        let secret = parse("type=secret,id=pip,env=PIP_TOKEN,required").unwrap();
        assert_eq!((secret.required, secret.env.as_deref()), (true, Some("PIP_TOKEN")));
        assert_eq!(mount_from("type=bind,from=deps,target=/x").as_deref(), Some("deps"));
    }

    #[test]
    fn bad_mounts_are_refused_with_the_frontends_words() {
        for (value, message) in [
            ("type=nfs,target=/x", "unsupported mount type \"nfs\""),
            ("type=bind,target=/x,uid=1", "uid not allowed for \"bind\" type mounts"),
            ("type=cache,target=/x,sharing=maybe", "unsupported sharing value \"maybe\""),
            ("type=bind,target=/x,required", "unexpected key 'required' for mount type 'bind'"),
            ("type=cache,target=/x,mode=9", "invalid value 9 for mode"),
            ("type=secret", "invalid secret mount. one of source, target required"),
            ("type=cache,targte=/x", "unexpected key 'targte' in 'targte=/x' (did you mean target?)"),
            ("type=cache,foo", "invalid field 'foo' must be a key=value pair"),
            ("type=bind,target=/x,size=1m", "unexpected key 'size' for mount type 'bind'"),
            ("type=tmpfs,target=/x,size=lots", "invalid value for size: lots"),
            ("type=secret,id=a,from=b", "secret mount should not have a from"),
            // The frontend's CSV reader answers io.EOF for an empty value.
            ("", "failed to parse csv mounts: EOF"),
        ] {
            assert_eq!(parse(value).unwrap_err().to_string(), message, "{value}");
        }
    }
}
