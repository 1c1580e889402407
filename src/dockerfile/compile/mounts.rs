//! `RUN --mount=...` values, read the way the frontend reads them
//! (`instructions/commands_runmount.go`): CSV fields, each value expanded
//! with the stage's variables, the same defaults and the same errors.

use crate::dockerfile::shell::{Env, Lexer};
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
pub(crate) fn parse_mount(value: &str, lexer: &Lexer, env: &dyn Env) -> Result<RunMount, String> {
    let fields = csv_fields(value).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
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
                "required" => return Err(format!("unexpected key '{key}' for mount type '{}'", m.kind.name())),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let value = lexer.expand(value, env).map_err(|e| e.to_string())?;
        let parse_bool = |value: &str| {
            crate::output::parse::parse_go_bool(value).ok_or_else(|| format!("invalid value for {key}: {value}"))
        };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    _ => return Err(format!("unsupported mount type {value:?}")),
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
            "required" => return Err(format!("unexpected key '{key}' for mount type '{}'", m.kind.name())),
            "size" if m.kind == MountKind::Tmpfs => {
                m.size =
                    crate::units::ram_in_bytes(&value).ok_or_else(|| format!("invalid value for {key}: {value}"))?
            }
            "size" => return Err(format!("unexpected key '{key}' for mount type '{}'", m.kind.name())),
            "id" => m.id = value,
            "sharing" => {
                let lower = value.to_ascii_lowercase();
                if !["shared", "private", "locked"].contains(&lower.as_str()) {
                    return Err(format!("unsupported sharing value {value:?}"));
                }
                m.sharing = lower;
            }
            "mode" => {
                m.mode = Some(u32::from_str_radix(&value, 8).map_err(|_| format!("invalid value {value} for mode"))?)
            }
            "uid" => m.uid = Some(value.parse().map_err(|_| format!("invalid value {value} for uid"))?),
            "gid" => m.gid = Some(value.parse().map_err(|_| format!("invalid value {value} for gid"))?),
            "env" => m.env = Some(value),
            _ => {
                let mut message = format!("unexpected key '{key}' in '{field}'");
                if let Some(similar) = ALL_KEYS.iter().find(|k| super::super::instructions::similar(k, &key)) {
                    message.push_str(&format!(" (did you mean {similar}?)"));
                }
                return Err(message);
            }
        }
    }
    if !matches!(m.kind, MountKind::Secret | MountKind::Ssh | MountKind::Cache) {
        for (name, set) in [("mode", m.mode.is_some()), ("uid", m.uid.is_some()), ("gid", m.gid.is_some())] {
            if set {
                return Err(format!("{name} not allowed for {:?} type mounts", m.kind.name()));
            }
        }
    }
    if readonly_auto {
        m.readonly = !matches!(m.kind, MountKind::Cache | MountKind::Tmpfs);
    }
    if m.kind == MountKind::Secret {
        if !m.from.is_empty() {
            return Err("secret mount should not have a from".into());
        }
        if !m.sharing.is_empty() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err("both source and id can't be set".into());
        }
    }
    if !m.sharing.is_empty() && m.kind != MountKind::Cache {
        return Err(format!("invalid cache sharing set for {} mount", m.kind.name()));
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

/// One CSV record, as Go's `csvvalue.Fields` reads it (double quotes may
/// wrap a field; `""` inside them is a quote).
pub(crate) fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(value.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record.iter().map(str::to_owned).collect()),
        Some(Err(error)) => Err(error.to_string()),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(value: &str) -> Result<RunMount, String> {
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
        ] {
            assert_eq!(parse(value).unwrap_err(), message, "{value}");
        }
    }
}
