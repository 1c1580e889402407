//! Compose files: each service with a `build:` section becomes a target of
//! the service's name (services without one are skipped, as buildx does),
//! with compose's interpolation (`${VAR}`, `${VAR:-default}`,
//! `${VAR?error}`, `$$`) from the environment and the `.env` file beside the
//! compose file (the environment wins, as in compose). Keys of `build:` that
//! fbuild does not use are warnings, as compose gives them. `x-bake:` holds
//! bake attributes (`tags`, `platforms`, `cache-from`, ...), layered last.
//!
//! Paths (`context`, `additional_contexts`, secret files) are relative to
//! the compose file's folder, as `docker compose build` reads them. buildx
//! reads them from the current folder unless asked otherwise; the two agree
//! whenever the compose file is in the current folder, and only
//! fbuild's reading builds what `docker compose` would from elsewhere.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;

use super::target::AttributeError;
use super::{BakeError, Definition, Env, Target};
use ComposeValueError::Expected;

/// `build:` keys compose defines that change nothing fbuild sends; named
/// in a warning rather than refused.
const KNOWN_UNUSED: &[&str] = &["isolation", "privileged", "cache_to_local", "entitlements"];

pub(crate) fn load(file: &str, text: &str, cwd: &Path, dir: &Path, process_env: &Env) -> Result<Definition, BakeError> {
    let invalid = |message: String| BakeError::Invalid { location: file.to_string(), message };
    // `.env` beside the compose file; the process environment wins.
    let mut env = read_dotenv(&cwd.join(dir).join(".env"), process_env)?;
    env.extend(process_env.iter().map(|(k, v)| (k.clone(), v.clone())));

    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let location = match e.location() {
            Some(l) => format!("{file}:{}:{}", l.line(), l.column()),
            None => file.to_string(),
        };
        let mut message = strip_location(&e.to_string());
        // Aliases are expanded while reading: one inside its own anchor
        // (`a: &x {b: *x}`) recurses until the parser's limit.
        if message.contains("recursion limit exceeded") {
            message.push_str(" (an alias refers to an anchor it is part of: the anchors form a cycle)");
        }
        BakeError::Invalid { location, message }
    })?;
    // Merge keys first: compose-go's YAML library resolves them while
    // reading, before interpolation and before any key means anything.
    let doc = super::merge_keys::apply(doc).map_err(|e| BakeError::Invalid {
        location: e.location(file, text),
        message: super::merge_keys::MergeError::MESSAGE.to_string(),
    })?;
    let doc = interpolate_value(doc, &env)
        .map_err(|(var, message)| BakeError::Invalid { location: locate(file, text, &var), message })?;

    let mut definition = Definition::default();
    let Some(services) = doc.get("services") else {
        return Err(invalid("a compose file needs a services: section".into()));
    };
    let services = services.as_mapping().ok_or_else(|| invalid("services: must be a mapping".into()))?;
    let secrets = doc.get("secrets").and_then(Value::as_mapping);
    let mut names = Vec::new();
    for (name, service) in services {
        // A service name may hold dots; buildx makes them underscores.
        let name = scalar(name).ok_or_else(|| invalid("a service name must be a string".into()))?.replace('.', "_");
        let Some(build) = service.get("build") else { continue };
        let at = |message: String| BakeError::Invalid { location: format!("{file}: service {name}"), message };
        let mut target = Target::default();
        let build = match build {
            Value::String(context) => {
                target.context = Some(join(dir, context));
                None
            }
            Value::Mapping(map) => Some(map),
            _ => return Err(at("build: must be a path or a mapping".into())),
        };
        if let Some(image) = service.get("image").and_then(scalar) {
            target.tags = Some(vec![image]);
        }
        let mut x_bake = None;
        for (key, value) in build.into_iter().flatten() {
            let key = scalar(key).unwrap_or_default();
            let bad = |reason: ComposeValueError| BakeError::Value {
                location: format!("{file}: service {name}"),
                what: format!("build.{key}"),
                reason: Box::new(reason.into()),
            };
            match key.as_str() {
                "context" => target.context = Some(join(dir, &scalar(value).ok_or_else(|| bad(Expected("a path")))?)),
                "dockerfile" => target.dockerfile = scalar(value),
                "dockerfile_inline" => target.dockerfile_inline = scalar(value),
                "target" => target.target = scalar(value),
                "network" => {
                    target.network = scalar(value);
                    // buildx grants what `network: host` needs.
                    if target.network.as_deref() == Some("host") {
                        target.entitlements = Some(vec!["network.host".into()]);
                    }
                }
                "shm_size" => {
                    let size = scalar(value).ok_or_else(|| bad(Expected("a size")))?;
                    let bytes = super::target::ram_in_bytes(&size).map_err(|e| bad(e.into()))?;
                    target.shm_size = Some(super::target::bytes_size(bytes));
                }
                "args" => target.args = Some(key_values(value, &env, true).map_err(bad)?),
                "labels" => target.labels = Some(key_values(value, &env, false).map_err(bad)?),
                "extra_hosts" => {
                    let hosts = key_values_sep(value, &[':', '='], &env).map_err(bad)?;
                    target.extra_hosts = Some(hosts);
                }
                "tags" => target.tags.get_or_insert_with(Vec::new).extend(strings(value).map_err(bad)?),
                "cache_from" => target.cache_from = Some(strings(value).map_err(bad)?),
                "cache_to" => target.cache_to = Some(strings(value).map_err(bad)?),
                "platforms" => target.platforms = Some(strings(value).map_err(bad)?),
                // Only `true` is carried over, as buildx does.
                "no_cache" => target.no_cache = value.as_bool().filter(|b| *b),
                "pull" => target.pull = value.as_bool().filter(|b| *b),
                "ssh" => target.ssh = Some(ssh(value).map_err(bad)?),
                "secrets" => target.secrets = Some(service_secrets(value, secrets, dir).map_err(bad)?),
                "additional_contexts" => {
                    let contexts = key_values(value, &env, false).map_err(bad)?;
                    let contexts = contexts
                        .into_iter()
                        .map(|(k, v)| {
                            let v = if v.contains("://") || v.starts_with("target:") { v } else { join(dir, &v) };
                            (k, v)
                        })
                        .collect();
                    target.contexts = Some(contexts);
                }
                "ulimits" => target.ulimits = Some(ulimits(value).map_err(bad)?),
                // As buildx's compose reader: the shorthands of `--sbom` and
                // `--provenance`, SBOM first.
                "sbom" | "provenance" => {
                    let text = scalar(value).ok_or_else(|| bad(Expected("a string or a boolean")))?;
                    let spec = crate::build::attrs::canonical_attest(&key, &text);
                    crate::build::attrs::parse_attest(&spec).map_err(|e| bad(AttributeError::from(e).into()))?;
                    let attest = target.attest.get_or_insert_with(Vec::new);
                    attest.push(spec);
                    attest.sort_by_key(|spec| !spec.starts_with("type=sbom"));
                }
                "x-bake" => x_bake = Some(value.clone()),
                _ if KNOWN_UNUSED.contains(&key.as_str()) || key.starts_with("x-") => {
                    definition.warnings.push(format!("{file}: service {name}: build.{key} is ignored by fbuild bake"))
                }
                // compose-go's schema refuses it, and so buildx.
                _ => return Err(at(format!("services.{name}.build additional properties '{key}' not allowed"))),
            }
        }
        if let Some(x_bake) = x_bake {
            apply_x_bake(&mut target, &x_bake).map_err(|reason| BakeError::Value {
                location: format!("{file}: service {name}"),
                what: "x-bake".into(),
                reason: Box::new(reason.into()),
            })?;
        }
        names.push(name.clone());
        definition.add_target(name, target);
    }
    // buildx puts every service with a build in the default group.
    definition.add_group("default".into(), names);
    Ok(definition)
}

/// A path from the compose file, relative to the file's folder (and to the
/// current folder in what `--print` shows).
fn join(dir: &Path, path: &str) -> String {
    if path.contains("://") || path.starts_with("git@") || Path::new(path).is_absolute() {
        return path.to_string();
    }
    clean(&dir.join(path).to_string_lossy())
}

/// `a/./b/../c` → `a/c`, `` → `.` (Go's `filepath.Clean`, for relative paths).
pub(crate) fn clean(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Why a compose value cannot be used where it stands (the words of the
/// value; the caller adds the service and key).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ComposeValueError {
    /// Not of the shape the key takes; says which shape.
    #[error("expected {0}")]
    Expected(&'static str),
    #[error("the value of {0} must be a string")]
    NotString(String),
    #[error("{0:?}: expected HOST:IP")]
    NotHostIp(String),
    #[error("a secret needs source:")]
    SecretSource,
    #[error("secret {0:?} is not defined in the top-level secrets:")]
    UndefinedSecret(String),
    #[error("secret {0:?} needs file: or environment:")]
    SecretKind(String),
    #[error("{name}: {field}: missing")]
    UlimitMissing { name: String, field: &'static str },
    #[error("{0}: expected a number")]
    UlimitNotNumber(String),
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    #[error("{0}: expected strings")]
    NotStrings(String),
    #[error("{0}: expected a value")]
    NotValue(String),
    #[error(transparent)]
    Attribute(#[from] AttributeError),
}

fn strings(value: &Value) -> Result<Vec<String>, ComposeValueError> {
    match value {
        Value::Sequence(items) => items.iter().map(|v| scalar(v).ok_or(Expected("a list of strings"))).collect(),
        Value::Null => Ok(Vec::new()),
        other => scalar(other).map(|s| vec![s]).ok_or(Expected("a list of strings")),
    }
}

/// `args`/`labels`: a list of `K=V` (or `K`, whose value comes from the
/// environment when `from_env`, and is left out when unset, as in compose)
/// or a mapping (a null value likewise).
fn key_values(value: &Value, env: &Env, from_env: bool) -> Result<BTreeMap<String, String>, ComposeValueError> {
    let mut out = BTreeMap::new();
    match value {
        Value::Sequence(items) => {
            for item in items {
                let item = scalar(item).ok_or(Expected("a list of K=V"))?;
                match item.split_once('=') {
                    Some((k, v)) => {
                        out.insert(k.to_string(), v.to_string());
                    }
                    None if from_env => {
                        if let Some(v) = env.get(&item) {
                            out.insert(item, v.clone());
                        }
                    }
                    None => {
                        out.insert(item, String::new());
                    }
                }
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map {
                let k = scalar(k).ok_or(Expected("string keys"))?;
                match scalar(v) {
                    Some(v) => {
                        out.insert(k, v);
                    }
                    None if v.is_null() && from_env => {
                        if let Some(v) = env.get(&k) {
                            out.insert(k, v.clone());
                        }
                    }
                    None if v.is_null() => {
                        out.insert(k, String::new());
                    }
                    None => return Err(ComposeValueError::NotString(k)),
                }
            }
        }
        Value::Null => {}
        _ => return Err(Expected("a list of K=V or a mapping")),
    }
    Ok(out)
}

/// `extra_hosts`: `host:ip` / `host=ip` items or a mapping.
fn key_values_sep(value: &Value, seps: &[char], env: &Env) -> Result<BTreeMap<String, String>, ComposeValueError> {
    if let Value::Sequence(items) = value {
        let mut out = BTreeMap::new();
        for item in items {
            let item = scalar(item).ok_or(Expected("a list of HOST:IP"))?;
            let (k, v) = seps
                .iter()
                .find_map(|sep| item.split_once(*sep))
                .ok_or_else(|| ComposeValueError::NotHostIp(item.clone()))?;
            out.insert(k.to_string(), v.to_string());
        }
        return Ok(out);
    }
    key_values(value, env, false)
}

/// `ssh`: `default`, `id=path` items or a mapping of id to path.
fn ssh(value: &Value) -> Result<Vec<String>, ComposeValueError> {
    match value {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| match (scalar(k), scalar(v)) {
                (Some(k), Some(v)) => Ok(format!("{k}={v}")),
                (Some(k), None) => Ok(k),
                _ => Err(Expected("ID: PATH")),
            })
            .collect(),
        other => strings(other),
    }
}

/// A service's `secrets:` names (or `{source: NAME}` objects) looked up in
/// the top-level `secrets:` (`file:` or `environment:`).
fn service_secrets(
    value: &Value,
    top: Option<&serde_yaml_ng::Mapping>,
    dir: &Path,
) -> Result<Vec<String>, ComposeValueError> {
    let Value::Sequence(items) = value else { return Err(Expected("a list of secret names")) };
    let mut out = Vec::new();
    for item in items {
        let (source, id) = match item {
            Value::Mapping(m) => {
                let source = m.get("source").and_then(scalar).ok_or(ComposeValueError::SecretSource)?;
                let id = m.get("target").and_then(scalar).unwrap_or_else(|| source.clone());
                (source, id)
            }
            other => {
                let name = scalar(other).ok_or(Expected("a secret name"))?;
                (name.clone(), name)
            }
        };
        let def = top
            .and_then(|t| t.get(source.as_str()))
            .ok_or_else(|| ComposeValueError::UndefinedSecret(source.clone()))?;
        if let Some(file) = def.get("file").and_then(scalar) {
            out.push(format!("id={id},src={}", join(dir, &file)));
        } else if let Some(var) = def.get("environment").and_then(scalar) {
            out.push(format!("id={id},env={var}"));
        } else {
            return Err(ComposeValueError::SecretKind(source));
        }
    }
    Ok(out)
}

/// `ulimits: {nofile: {soft: 1, hard: 2}, nproc: 3}` → `nofile=1:2`, `nproc=3`.
fn ulimits(value: &Value) -> Result<Vec<String>, ComposeValueError> {
    let Value::Mapping(map) = value else { return Err(Expected("a mapping")) };
    let mut out = Vec::new();
    for (name, limit) in map {
        let name = scalar(name).ok_or(Expected("names"))?;
        match limit {
            Value::Mapping(m) => {
                let missing = |field| ComposeValueError::UlimitMissing { name: name.clone(), field };
                let soft = m.get("soft").and_then(scalar).ok_or_else(|| missing("soft"))?;
                let hard = m.get("hard").and_then(scalar).ok_or_else(|| missing("hard"))?;
                out.push(format!("{name}={soft}:{hard}"));
            }
            other => out.push(format!(
                "{name}={}",
                scalar(other).ok_or_else(|| ComposeValueError::UlimitNotNumber(name.clone()))?
            )),
        }
    }
    Ok(out)
}

/// `x-bake:` keys are bake attribute names; lists append, maps set keys.
fn apply_x_bake(target: &mut Target, x_bake: &Value) -> Result<(), ComposeValueError> {
    let Value::Mapping(map) = x_bake else { return Err(Expected("a mapping")) };
    for (key, value) in map {
        let key = scalar(key).unwrap_or_default();
        if !super::target::KEYS.contains(&key.as_str()) {
            return Err(ComposeValueError::UnknownKey(key));
        }
        match value {
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item = scalar(item).ok_or_else(|| ComposeValueError::NotStrings(key.clone()))?;
                    target.set(&key, None, &item, i > 0)?;
                }
            }
            Value::Mapping(m) => {
                for (k, v) in m {
                    let (k, v) = (scalar(k).unwrap_or_default(), scalar(v).unwrap_or_default());
                    target.set(&key, Some(&k), &v, true)?;
                }
            }
            other => {
                let value = scalar(other).ok_or_else(|| ComposeValueError::NotValue(key.clone()))?;
                target.set(&key, None, &value, false)?
            }
        }
    }
    Ok(())
}

/// `KEY=VALUE` lines of a `.env` file (comments, blank lines, `export `
/// and quotes handled); a missing file is an empty one. Unquoted and
/// double-quoted values are interpolated as compose-go's dotenv does:
/// `${A}` is the process environment's `A`, else an earlier line's.
pub(crate) fn read_dotenv(path: &Path, process_env: &Env) -> Result<Env, BakeError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Env::new()),
        Err(source) => return Err(BakeError::Read { path: path.to_path_buf(), source }),
    };
    let mut env = Env::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(BakeError::Invalid {
                location: format!("{}:{}", path.display(), n + 1),
                message: "expected KEY=VALUE".into(),
            });
        };
        let value = value.trim();
        let single_quoted = value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'');
        let raw = if value.len() >= 2 && (value.starts_with('"') && value.ends_with('"') || single_quoted) {
            &value[1..value.len() - 1]
        } else {
            // An unquoted value ends at a ` #` comment.
            value.split(" #").next().unwrap_or("").trim_end()
        };
        let value = if single_quoted {
            raw.to_string()
        } else {
            let mut lookup = env.clone();
            lookup.extend(process_env.iter().map(|(k, v)| (k.clone(), v.clone())));
            interpolate(raw, &lookup).map_err(|(_, message)| BakeError::Invalid {
                location: format!("{}:{}", path.display(), n + 1),
                message,
            })?
        };
        env.insert(key.trim().to_string(), value);
    }
    Ok(env)
}

/// Interpolates every string in the document (keys stay as written).
fn interpolate_value(value: Value, env: &Env) -> Result<Value, (String, String)> {
    Ok(match value {
        Value::String(s) => Value::String(interpolate(&s, env)?),
        Value::Sequence(items) => {
            Value::Sequence(items.into_iter().map(|v| interpolate_value(v, env)).collect::<Result<_, _>>()?)
        }
        Value::Mapping(map) => {
            let mut out = serde_yaml_ng::Mapping::new();
            for (k, v) in map {
                out.insert(k, interpolate_value(v, env)?);
            }
            Value::Mapping(out)
        }
        Value::Tagged(tagged) => {
            let tagged = *tagged;
            Value::Tagged(Box::new(serde_yaml_ng::value::TaggedValue {
                tag: tagged.tag,
                value: interpolate_value(tagged.value, env)?,
            }))
        }
        other => other,
    })
}

/// Compose's interpolation of one string. An error is the variable's name
/// (to find its line) and the message.
pub(crate) fn interpolate(text: &str, env: &Env) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = matching_brace(inner).ok_or_else(|| (String::new(), format!("unclosed ${{ in {text:?}")))?;
            out.push_str(&expand(&inner[..end], env)?);
            rest = &inner[end + 1..];
        } else {
            let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(env.get(&after[..len]).map(String::as_str).unwrap_or(""));
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` closing an expression, counting nested `${`.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// One `${...}`: `NAME`, `NAME:-default`, `NAME-default`, `NAME:?err`,
/// `NAME?err`, `NAME:+alt`, `NAME+alt`.
fn expand(expr: &str, env: &Env) -> Result<String, (String, String)> {
    let name_len = expr.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(expr.len());
    let (name, op) = expr.split_at(name_len);
    if name.is_empty() {
        return Err((String::new(), format!("invalid interpolation ${{{expr}}}")));
    }
    let value = env.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let (colon, op) = match op.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, op),
    };
    let present = if colon { set_nonempty } else { value.is_some() };
    let arg = |rest: &str| interpolate(rest, env);
    match op.chars().next() {
        None if !colon => Ok(value.cloned().unwrap_or_default()),
        Some('-') => {
            if present {
                Ok(value.cloned().unwrap_or_default())
            } else {
                arg(&op[1..])
            }
        }
        Some('+') => {
            if present {
                arg(&op[1..])
            } else {
                Ok(String::new())
            }
        }
        Some('?') => {
            if present {
                Ok(value.cloned().unwrap_or_default())
            } else {
                let message = arg(&op[1..])?;
                let message = if message.is_empty() {
                    format!("required variable {name} is missing a value")
                } else {
                    format!("required variable {name} is missing a value: {message}")
                };
                Err((name.to_string(), message))
            }
        }
        _ => Err((name.to_string(), format!("invalid interpolation ${{{expr}}}"))),
    }
}

/// `FILE:LINE` of the first line mentioning `${VAR`, else the file.
fn locate(file: &str, text: &str, var: &str) -> String {
    if !var.is_empty() {
        let needle = format!("${{{var}");
        if let Some(n) = text.lines().position(|line| line.contains(&needle)) {
            return format!("{file}:{}", n + 1);
        }
    }
    file.to_string()
}

/// serde_yaml's message ends in `at line L column C`, which the location
/// already says.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn interpolation_follows_compose() {
        let e = env(&[("A", "a"), ("EMPTY", "")]);
        assert_eq!(interpolate("x${A}y$A $$A", &e).unwrap(), "xaya $A");
        assert_eq!(interpolate("${B:-d} ${EMPTY:-d} ${EMPTY-d} ${B-${A}}", &e).unwrap(), "d d  a");
        assert_eq!(interpolate("${A:+alt}${B:+alt}", &e).unwrap(), "alt");
        let (var, message) = interpolate("${B?please set B}", &e).unwrap_err();
        assert_eq!(var, "B");
        assert!(message.contains("please set B"), "{message}");
    }

    #[test]
    fn services_become_targets() {
        let text = "services:\n  app:\n    image: r/app:1\n    build:\n      context: ./app\n      args: [A=1, FROM_ENV, UNSET]\n      cache_from: [r/cache]\n      x-note: 1\n  db:\n    image: postgres\n";
        let d =
            load("compose.yaml", text, Path::new("/nonexistent"), Path::new(""), &env(&[("FROM_ENV", "e")])).unwrap();
        assert_eq!(d.targets.len(), 1);
        let app = d.target("app").unwrap();
        assert_eq!(app.context.as_deref(), Some("app"));
        assert_eq!(app.args.as_ref().unwrap().get("FROM_ENV").map(String::as_str), Some("e"));
        assert!(!app.args.as_ref().unwrap().contains_key("UNSET"));
        assert_eq!(app.tags.as_deref().unwrap(), ["r/app:1"]);
        assert!(d.warnings[0].contains("build.x-note is ignored"), "{:?}", d.warnings);
        assert_eq!(d.group("default").unwrap(), ["app"]);
        // A key compose does not know is refused, as compose-go's schema does.
        let bogus = text.replace("x-note", "bogus");
        let err = load("compose.yaml", &bogus, Path::new("/nonexistent"), Path::new(""), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("services.app.build additional properties 'bogus' not allowed"), "{err}");
    }

    #[test]
    fn dotenv_values_are_interpolated_as_compose_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "A=x\nB=${A}-y\nC=\"${A}${FROM_ENV}\"\nD='${A}'\n").unwrap();
        let env = read_dotenv(&path, &env(&[("FROM_ENV", "e")])).unwrap();
        assert_eq!(env["B"], "x-y");
        assert_eq!(env["C"], "xe");
        assert_eq!(env["D"], "${A}");
    }

    #[test]
    fn anchor_cycles_and_bad_merge_keys_are_errors_with_a_line() {
        let text = "services: &s\n  app:\n    build:\n      <<: *s\n";
        let err = load("c.yaml", text, Path::new("/x"), Path::new(""), &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("c.yaml:3:") && err.contains("cycle"), "{err}");
        let text = "services:\n  app:\n    build:\n      context: .\n      <<: [a, b]\n";
        let err = load("c.yaml", text, Path::new("/x"), Path::new(""), &Env::new()).unwrap_err().to_string();
        assert_eq!(err, "c.yaml:5: map merge requires map or sequence of maps as the value");
    }

    #[test]
    fn merge_keys_under_build_and_args_are_applied() {
        let text = "x-b: &b\n  context: ./shared\n  dockerfile: D\n  args: &a\n    A: '1'\nservices:\n  app:\n    build:\n      <<: *b\n      args:\n        <<: *a\n        B: '2'\n";
        let d = load("c.yaml", text, Path::new("/x"), Path::new(""), &Env::new()).unwrap();
        let app = d.target("app").unwrap();
        assert_eq!(app.context.as_deref(), Some("shared"));
        assert_eq!(app.dockerfile.as_deref(), Some("D"));
        assert_eq!(app.args.as_ref().unwrap().len(), 2);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn errors_name_the_line() {
        let text = "services:\n  app:\n    build:\n      context: .\n      args:\n        A: ${NEED?set NEED}\n";
        let err = load("c.yaml", text, Path::new("/nonexistent"), Path::new(""), &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("c.yaml:6: ") && err.contains("set NEED"), "{err}");
        let err = load("c.yaml", "services:\n  app: [\n", Path::new("/x"), Path::new(""), &Env::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.yaml:"), "{err}");
    }

    #[test]
    fn a_bad_value_is_an_error_callers_can_match() {
        let text = "services:\n  app:\n    build:\n      context: .\n      ulimits: [1]\n      shm_size: lots\n";
        let err = load("c.yaml", text, Path::new("/x"), Path::new(""), &Env::new()).unwrap_err();
        match &err {
            BakeError::Value { what, reason, .. } => {
                let super::super::ValueProblem::Compose(reason) = reason.as_ref() else { panic!("{reason:?}") };
                assert!(what == "build.ulimits" || what == "build.shm_size", "{what}");
                assert!(
                    matches!(reason, ComposeValueError::Expected("a mapping") | ComposeValueError::Attribute(_)),
                    "{reason:?}"
                );
            }
            other => panic!("not a value error: {other:?}"),
        }
        assert!(err.to_string().starts_with("c.yaml: service app: build."), "{err}");
    }
}
