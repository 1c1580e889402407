//! The buildx options that turn into frontend or exporter attributes without
//! touching the disk: `--provenance`/`--sbom`/`--attest`, `--annotation`,
//! `--shm-size`, `--ulimit` and `--call`/`--check`. Each parser follows the
//! buildx source it names, and says what is wrong in one line (the caller
//! adds the flag, or the bake attribute, and its value). `fbuild solve` and
//! bake both encode these options here, so the two never drift apart.

use std::collections::BTreeMap;

/// Attestation types the daemon's Dockerfile frontend knows.
const ATTEST_TYPES: &[&str] = &["provenance", "sbom"];

/// What buildx attaches when the user says nothing about provenance
/// (`build/opt.go`): a minimal provenance, only for exporters that carry
/// attestations inline (image, oci, docker).
pub(crate) const DEFAULT_PROVENANCE: &str = "mode=min,inline-only=true";

/// The environment variable that turns the default provenance off.
pub(crate) const NO_DEFAULT_ATTESTATIONS: &str = "BUILDX_NO_DEFAULT_ATTESTATIONS";

/// One `--attest` value (or the `--provenance`/`--sbom` shorthand, made
/// canonical first), as buildx's `buildflags.Attest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attest {
    pub kind: String,
    pub disabled: bool,
    pub attrs: BTreeMap<String, String>,
}

/// buildx's `CanonicalizeAttest`: `true`/`false` (any Go boolean) become
/// `disabled=`, anything else is a list of attributes for `kind`.
pub(crate) fn canonical_attest(kind: &str, value: &str) -> String {
    match crate::output::parse::parse_go_bool(value) {
        Some(enabled) => format!("type={kind},disabled={}", !enabled),
        None => format!("type={kind},{value}"),
    }
}

/// Parses one attestation spec (`type=provenance,mode=max`).
pub(crate) fn parse_attest(spec: &str) -> Result<Attest, String> {
    let fields = crate::output::csv_fields(spec).map_err(|problem| problem.to_string())?;
    let mut attest = Attest { kind: String::new(), disabled: false, attrs: BTreeMap::new() };
    for field in fields {
        let (key, value) = field.split_once('=').ok_or_else(|| format!("field {field:?} is not a key=value pair"))?;
        match key.trim().to_ascii_lowercase().as_str() {
            "type" => attest.kind = value.to_owned(),
            "disabled" => {
                attest.disabled = crate::output::parse::parse_go_bool(value)
                    .ok_or_else(|| format!("disabled={value} is not a boolean"))?
            }
            _ => {
                attest.attrs.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    if attest.kind.is_empty() {
        return Err("attestation type not specified (type=provenance or type=sbom)".into());
    }
    if !ATTEST_TYPES.contains(&attest.kind.as_str()) {
        return Err(format!("unknown attestation type {:?} (expected provenance or sbom)", attest.kind));
    }
    // The daemon would only refuse a bad mode once the build has run.
    if attest.kind == "provenance" {
        if let Some(mode) = attest.attrs.get("mode").filter(|mode| !matches!(mode.as_str(), "min" | "max")) {
            return Err(format!("mode={mode} is not min or max"));
        }
    }
    Ok(attest)
}

/// The frontend attributes for a list of attestations in flag order
/// (`--attest` values first, then `--provenance`, then `--sbom`, as buildx
/// collects them), with buildx's default provenance added unless provenance
/// was mentioned or `no_default` is set. As in buildx's `Attests.ToMap`, the
/// first value of a type wins; a disabled type sends nothing.
pub(crate) fn attest_attrs(attests: &[Attest], no_default: bool) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    for attest in attests {
        seen.entry(attest.kind.clone()).or_insert(attest);
    }
    let mut attrs = BTreeMap::new();
    for (kind, attest) in &seen {
        if attest.disabled {
            continue;
        }
        let mut fields = vec![csv_pair("type", kind)];
        fields.extend(attest.attrs.iter().map(|(key, value)| csv_pair(key, value)));
        attrs.insert(format!("attest:{kind}"), fields.join(","));
    }
    if !seen.contains_key("provenance") && !no_default {
        attrs.insert("attest:provenance".into(), DEFAULT_PROVENANCE.into());
    }
    attrs
}

/// `key=value`, quoted as one CSV field when it holds a comma or a quote
/// (buildx's `csvBuilder`).
fn csv_pair(key: &str, value: &str) -> String {
    let pair = format!("{key}={value}");
    if pair.contains(',') || pair.contains('"') {
        format!("\"{}\"", pair.replace('"', "\"\""))
    } else {
        pair
    }
}

/// One `--annotation` value as the exporter attribute buildx makes of it
/// (`util/buildflags/export.go` ParseAnnotations, then
/// `exptypes.AnnotationKey.String()`): `KEY=VALUE` is `annotation.KEY`;
/// `TYPE[,TYPE…]:KEY=VALUE` with types `manifest`, `manifest-descriptor`,
/// `index`, `index-descriptor` (the manifest ones with an optional
/// `[PLATFORM]`) gives one attribute per type.
pub(crate) fn parse_annotation(value: &str) -> Result<Vec<(String, String)>, String> {
    let (key, val) = value.split_once('=').ok_or_else(|| "expected KEY=VALUE".to_string())?;
    let Some((types, key)) = key.split_once(':') else {
        return Ok(vec![(format!("annotation.{key}"), val.to_owned())]);
    };
    let mut out = Vec::new();
    for type_and_platform in types.split(',') {
        let (kind, platform) = match type_and_platform.split_once('[') {
            Some((kind, rest)) => {
                let platform = rest
                    .strip_suffix(']')
                    .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_/-".contains(c)))
                    .ok_or_else(|| {
                        format!(
                            "invalid annotation type {type_and_platform:?}, expected type and optional platform in square brackets"
                        )
                    })?;
                (kind, Some(platform))
            }
            None => (type_and_platform, None),
        };
        let prefix = match kind {
            "" => "annotation".to_owned(),
            "manifest" | "manifest-descriptor" => match platform {
                Some(platform) => format!("annotation-{kind}[{platform}]"),
                None => format!("annotation-{kind}"),
            },
            "index" | "index-descriptor" => format!("annotation-{kind}"),
            other => return Err(format!("unknown annotation type {other:?}")),
        };
        out.push((format!("{prefix}.{key}"), val.to_owned()));
    }
    Ok(out)
}

/// Names `--ulimit` accepts (go-units' table; `as` is left out there too).
const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// One `--ulimit NAME=SOFT[:HARD]` as go-units' `ParseUlimit` reads it,
/// returned as the daemon receives it (`NAME=SOFT:HARD`, `Ulimit.String()`).
pub(crate) fn parse_ulimit(value: &str) -> Result<(String, String), String> {
    let (name, limits) = value.split_once('=').ok_or_else(|| "expected NAME=SOFT[:HARD]".to_string())?;
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type {name:?} (expected one of {})", ULIMIT_NAMES.join(", ")));
    }
    let number = |s: &str| s.parse::<i64>().map_err(|_| format!("{s:?} is not an integer"));
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => (number(soft)?, number(soft)?),
        [soft, hard] => (number(soft)?, number(hard)?),
        _ => return Err("too many limit values; at most SOFT:HARD".into()),
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!("the soft limit -1 (unlimited) is above the hard limit {hard}"));
        }
        if soft > hard {
            return Err(format!("the soft limit {soft} is above the hard limit {hard}"));
        }
    }
    Ok((name.to_owned(), format!("{name}={soft}:{hard}")))
}

/// A size flag's value (`--shm-size`, `--memory`) as go-units'
/// `RAMInBytes` reads it ([`crate::units::ram_in_bytes`]), or what to write.
pub(crate) fn ram_in_bytes(value: &str) -> Result<i64, String> {
    crate::units::ram_in_bytes(value).ok_or_else(|| "expected a size such as 64m, 1g or 1024 (bytes)".to_string())
}

/// One `--resource KEY=VALUE` (or a hidden legacy flag such as `--memory`)
/// as the frontend attribute buildx sends for it (`build/utils.go`
/// ParseResourceLimits and addResourceLimits); `None` for a value buildx
/// leaves out (zero).
pub(crate) fn parse_resource(entry: &str) -> Result<(&'static str, Option<String>), String> {
    let (key, value) =
        entry.split_once('=').ok_or_else(|| format!("invalid resource {entry:?}, expected key=value"))?;
    let (key, value) = (key.trim(), value.trim());
    let invalid = |why: String| format!("invalid value {value:?} for resource {key}: {why}");
    let number = || value.parse::<i64>().map_err(|_| invalid("not an integer".into()));
    let positive = |n: i64| (n > 0).then(|| n.to_string());
    Ok(match key {
        "memory" => ("memory", positive(ram_in_bytes(value).map_err(invalid)?)),
        // -1 is unlimited swap.
        "memory-swap" if value == "-1" => ("memswap", Some("-1".into())),
        "memory-swap" => ("memswap", positive(ram_in_bytes(value).map_err(invalid)?)),
        "cpu-shares" => ("cpushares", positive(number()?)),
        "cpu-period" => ("cpuperiod", positive(number()?)),
        "cpu-quota" => ("cpuquota", positive(number()?)),
        "cpuset-cpus" => ("cpusetcpus", Some(value.to_owned()).filter(|v| !v.is_empty())),
        "cpuset-mems" => ("cpusetmems", Some(value.to_owned()).filter(|v| !v.is_empty())),
        _ => {
            return Err(format!(
                "unknown resource {key:?} (expected memory, memory-swap, cpu-shares, cpu-period, cpu-quota, cpuset-cpus or cpuset-mems)"
            ))
        }
    })
}

/// `--call` (and `--check`): which frontend subrequest runs instead of the
/// build, as buildx's `buildflags.ParseCallFunc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallFunc {
    /// The subrequest, `frontend.NAME` on the wire; `check` is `lint`.
    pub name: String,
    /// `format=json` prints `result.json` instead of the text.
    pub format: Option<String>,
    /// `ignorestatus=true` exits 0 whatever the frontend's status code.
    pub ignore_status: bool,
}

/// The subrequests the daemon's Dockerfile frontend answers.
const CALL_NAMES: &[&str] = &["outline", "targets", "lint", "subrequests.describe"];

/// `None` for `build` (the default: a normal build).
pub(crate) fn parse_call(value: &str) -> Result<Option<CallFunc>, String> {
    let fields = crate::output::csv_fields(value).map_err(|problem| problem.to_string())?;
    let mut call = CallFunc { name: String::new(), format: None, ignore_status: false };
    for field in fields {
        match field.split_once('=') {
            Some(("format", format)) => {
                if !matches!(format, "json" | "text" | "") {
                    return Err(format!("format={format} is not json or text"));
                }
                call.format = Some(format.to_owned()).filter(|f| !f.is_empty());
            }
            Some(("ignorestatus", flag)) => {
                call.ignore_status = crate::output::parse::parse_go_bool(flag)
                    .ok_or_else(|| format!("ignorestatus={flag} is not a boolean"))?
            }
            Some(_) => return Err(format!("invalid field {field:?} (expected NAME, format= or ignorestatus=)")),
            None if !call.name.is_empty() => return Err("more than one name".into()),
            None => call.name = field,
        }
    }
    if call.name == "check" {
        call.name = "lint".into();
    }
    match call.name.as_str() {
        "build" => Ok(None),
        name if CALL_NAMES.contains(&name) => Ok(Some(call)),
        "" => Err("the name is missing (expected build, check, outline or targets)".into()),
        other => Err(format!("unknown call {other:?} (expected build, check, outline or targets)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(values: &[&str], no_default: bool) -> Vec<(String, String)> {
        let attests: Vec<Attest> = values.iter().map(|v| parse_attest(v).unwrap()).collect();
        attest_attrs(&attests, no_default).into_iter().collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn provenance_defaults_and_shorthands_match_buildx() {
        assert_eq!(attrs(&[], false), pairs(&[("attest:provenance", "mode=min,inline-only=true")]));
        assert_eq!(attrs(&[], true), pairs(&[]));
        assert_eq!(attrs(&[&canonical_attest("provenance", "false")], false), pairs(&[]));
        assert_eq!(
            attrs(&[&canonical_attest("provenance", "true")], false),
            pairs(&[("attest:provenance", "type=provenance")])
        );
        assert_eq!(
            attrs(&[&canonical_attest("provenance", "mode=max")], false),
            pairs(&[("attest:provenance", "type=provenance,mode=max")])
        );
        assert_eq!(
            attrs(&[&canonical_attest("sbom", "generator=reg/scanner:1")], false),
            pairs(&[
                ("attest:provenance", "mode=min,inline-only=true"),
                ("attest:sbom", "type=sbom,generator=reg/scanner:1")
            ])
        );
        // The first value of a type wins, as buildx's ToMap.
        assert_eq!(
            attrs(&["type=provenance,mode=max", &canonical_attest("provenance", "0")], false),
            pairs(&[("attest:provenance", "type=provenance,mode=max")])
        );
        // Attributes are sorted; a value with a comma is quoted.
        assert_eq!(attrs(&["type=sbom,z=1,\"a=x,y\""], true), pairs(&[("attest:sbom", "type=sbom,\"a=x,y\",z=1")]));
    }

    #[test]
    fn bad_attestations_say_why() {
        assert!(parse_attest("mode=max").unwrap_err().contains("type not specified"));
        assert!(parse_attest("type=vex").unwrap_err().contains("unknown attestation type"));
        assert!(parse_attest("type=provenance,mode=full").unwrap_err().contains("mode=full"));
        assert!(parse_attest("type=sbom,disabled=maybe").unwrap_err().contains("not a boolean"));
        assert!(parse_attest("type=sbom,junk").unwrap_err().contains("key=value"));
    }

    #[test]
    fn annotations_become_exporter_attrs() {
        assert_eq!(parse_annotation("org.a=b").unwrap(), pairs(&[("annotation.org.a", "b")]));
        assert_eq!(
            parse_annotation("index,manifest:org.x=1=2").unwrap(),
            pairs(&[("annotation-index.org.x", "1=2"), ("annotation-manifest.org.x", "1=2")])
        );
        assert_eq!(
            parse_annotation("manifest[linux/amd64]:k=v").unwrap(),
            pairs(&[("annotation-manifest[linux/amd64].k", "v")])
        );
        assert!(parse_annotation("novalue").is_err());
        assert!(parse_annotation("layer:k=v").unwrap_err().contains("unknown annotation type"));
        assert!(parse_annotation("manifest[a b]:k=v").is_err());
    }

    #[test]
    fn ulimits_as_go_units() {
        assert_eq!(parse_ulimit("nofile=1024:2048").unwrap().1, "nofile=1024:2048");
        assert_eq!(parse_ulimit("nproc=64").unwrap().1, "nproc=64:64");
        assert_eq!(parse_ulimit("core=-1").unwrap().1, "core=-1:-1");
        assert!(parse_ulimit("as=1").unwrap_err().contains("invalid ulimit type"));
        assert!(parse_ulimit("nofile=2048:1024").unwrap_err().contains("above the hard limit"));
        assert!(parse_ulimit("nofile=x").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert!(parse_ulimit("nofile=1:2:3").is_err());
    }

    #[test]
    fn sizes_as_ram_in_bytes() {
        assert_eq!(ram_in_bytes("1024").unwrap(), 1024);
        assert_eq!(ram_in_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("2k").unwrap(), 2048);
        assert_eq!(ram_in_bytes("10b").unwrap(), 10);
        assert_eq!(ram_in_bytes("1.5g").unwrap(), 3 << 29);
        assert!(ram_in_bytes("lots").is_err());
        assert!(ram_in_bytes("1x").is_err());
        assert!(ram_in_bytes("1mx").is_err());
    }

    #[test]
    fn resources_as_buildx() {
        assert_eq!(parse_resource("memory=64m").unwrap(), ("memory", Some((64 << 20).to_string())));
        assert_eq!(parse_resource(" memory-swap = -1").unwrap(), ("memswap", Some("-1".to_string())));
        assert_eq!(parse_resource("cpu-quota=50000").unwrap(), ("cpuquota", Some("50000".to_string())));
        assert_eq!(parse_resource("cpuset-cpus=0-1").unwrap(), ("cpusetcpus", Some("0-1".to_string())));
        assert_eq!(parse_resource("cpu-shares=0").unwrap(), ("cpushares", None), "zero is not sent");
        assert!(parse_resource("gpu=1").unwrap_err().contains("unknown resource"));
        assert!(parse_resource("memory=lots").unwrap_err().contains("invalid value"));
        assert!(parse_resource("memory").is_err());
    }

    #[test]
    fn call_functions_as_buildx() {
        assert_eq!(parse_call("build").unwrap(), None);
        let check = parse_call("check").unwrap().unwrap();
        assert_eq!(check.name, "lint");
        let outline = parse_call("outline,format=json").unwrap().unwrap();
        assert_eq!((outline.name.as_str(), outline.format.as_deref()), ("outline", Some("json")));
        assert!(parse_call("targets,ignorestatus=true").unwrap().unwrap().ignore_status);
        assert!(parse_call("nope").unwrap_err().contains("unknown call"));
        assert!(parse_call("outline,targets").unwrap_err().contains("more than one"));
        assert!(parse_call("outline,format=yaml").is_err());
    }
}
