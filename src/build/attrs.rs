//! The buildx options that turn into frontend or exporter attributes without
//! touching the disk: `--provenance`/`--sbom`/`--attest`, `--annotation`,
//! `--shm-size`, `--ulimit` and `--call`/`--check`. Each parser follows the
//! buildx source it names, and says what is wrong in one line (the caller
//! adds the flag, or the bake attribute, and its value). `fbuild solve` and
//! bake both encode these options here, so the two never drift apart.

use std::collections::BTreeMap;

use crate::output::OutputProblem;

/// Why one of these options' values cannot be used. The words are the
/// value's only; the caller names the flag or bake attribute and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttrError {
    /// The value is not valid CSV.
    #[error(transparent)]
    Csv(OutputProblem),
    /// The value is not of the form the option takes; says which form.
    #[error("expected {0}")]
    Expected(&'static str),
    #[error("field {0:?} is not a key=value pair")]
    NotKeyValue(String),
    #[error("{key}={value} is not a boolean")]
    NotBool { key: &'static str, value: String },
    #[error("attestation type not specified (type=provenance or type=sbom)")]
    MissingAttestType,
    #[error("unknown attestation type {0:?} (expected provenance or sbom)")]
    UnknownAttestType(String),
    #[error("mode={0} is not min or max")]
    ProvenanceMode(String),
    #[error("invalid annotation type {0:?}, expected type and optional platform in square brackets")]
    AnnotationPlatform(String),
    #[error("unknown annotation type {0:?}")]
    UnknownAnnotationType(String),
    #[error("invalid ulimit type {0:?} (expected one of {names})", names = ULIMIT_NAMES.join(", "))]
    UnknownUlimit(String),
    #[error("{0:?} is not an integer")]
    NotInteger(String),
    #[error("too many limit values; at most SOFT:HARD")]
    TooManyLimits,
    #[error("the soft limit -1 (unlimited) is above the hard limit {hard}")]
    UnlimitedSoftLimit { hard: i64 },
    #[error("the soft limit {soft} is above the hard limit {hard}")]
    SoftAboveHard { soft: i64, hard: i64 },
    #[error("invalid resource {0:?}, expected key=value")]
    ResourceNotKeyValue(String),
    #[error("invalid value {value:?} for resource {key}: not an integer")]
    ResourceNotInteger { key: String, value: String },
    #[error("invalid value {value:?} for resource {key}: expected {SIZE_FORM}")]
    ResourceNotSize { key: String, value: String },
    #[error("unknown resource {0:?} (expected memory, memory-swap, cpu-shares, cpu-period, cpu-quota, cpuset-cpus or cpuset-mems)")]
    UnknownResource(String),
    #[error("format={0} is not json or text")]
    CallFormat(String),
    #[error("invalid field {0:?} (expected NAME, format= or ignorestatus=)")]
    CallField(String),
    #[error("more than one name")]
    CallNames,
    #[error("the name is missing (expected build, check, outline or targets)")]
    CallMissing,
    #[error("unknown call {0:?} (expected build, check, outline or targets)")]
    UnknownCall(String),
}

/// What a size (`--shm-size`, `memory=`) looks like.
const SIZE_FORM: &str = "a size such as 64m, 1g or 1024 (bytes)";

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
    match crate::gostrconv::parse_bool(value) {
        Some(enabled) => format!("type={kind},disabled={}", !enabled),
        None => format!("type={kind},{value}"),
    }
}

/// Parses one attestation spec (`type=provenance,mode=max`).
pub(crate) fn parse_attest(spec: &str) -> Result<Attest, AttrError> {
    let fields = crate::output::csv_fields(spec).map_err(AttrError::Csv)?;
    let mut attest = Attest { kind: String::new(), disabled: false, attrs: BTreeMap::new() };
    for field in fields {
        let (key, value) = field.split_once('=').ok_or_else(|| AttrError::NotKeyValue(field.clone()))?;
        match key.trim().to_ascii_lowercase().as_str() {
            "type" => attest.kind = value.to_owned(),
            "disabled" => {
                attest.disabled = crate::gostrconv::parse_bool(value)
                    .ok_or_else(|| AttrError::NotBool { key: "disabled", value: value.to_owned() })?
            }
            _ => {
                attest.attrs.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    if attest.kind.is_empty() {
        return Err(AttrError::MissingAttestType);
    }
    if !ATTEST_TYPES.contains(&attest.kind.as_str()) {
        return Err(AttrError::UnknownAttestType(attest.kind));
    }
    // The daemon would only refuse a bad mode once the build has run.
    if attest.kind == "provenance" {
        if let Some(mode) = attest.attrs.get("mode").filter(|mode| !matches!(mode.as_str(), "min" | "max")) {
            return Err(AttrError::ProvenanceMode(mode.clone()));
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
pub(crate) fn parse_annotation(value: &str) -> Result<Vec<(String, String)>, AttrError> {
    let (key, val) = value.split_once('=').ok_or(AttrError::Expected("KEY=VALUE"))?;
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
                    .ok_or_else(|| AttrError::AnnotationPlatform(type_and_platform.to_owned()))?;
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
            other => return Err(AttrError::UnknownAnnotationType(other.to_owned())),
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
pub(crate) fn parse_ulimit(value: &str) -> Result<(String, String), AttrError> {
    let (name, limits) = value.split_once('=').ok_or(AttrError::Expected("NAME=SOFT[:HARD]"))?;
    if !ULIMIT_NAMES.contains(&name) {
        return Err(AttrError::UnknownUlimit(name.to_owned()));
    }
    let number = |s: &str| s.parse::<i64>().map_err(|_| AttrError::NotInteger(s.to_owned()));
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => (number(soft)?, number(soft)?),
        [soft, hard] => (number(soft)?, number(hard)?),
        _ => return Err(AttrError::TooManyLimits),
    };
    if hard != -1 {
        if soft == -1 {
            return Err(AttrError::UnlimitedSoftLimit { hard });
        }
        if soft > hard {
            return Err(AttrError::SoftAboveHard { soft, hard });
        }
    }
    Ok((name.to_owned(), format!("{name}={soft}:{hard}")))
}

/// A size flag's value (`--shm-size`, `--memory`) as go-units'
/// `RAMInBytes` reads it ([`crate::units::ram_in_bytes`]), or what to write.
pub(crate) fn ram_in_bytes(value: &str) -> Result<i64, AttrError> {
    crate::units::ram_in_bytes(value).ok_or(AttrError::Expected(SIZE_FORM))
}

/// One `--resource KEY=VALUE` (or a hidden legacy flag such as `--memory`)
/// as the frontend attribute buildx sends for it (`build/utils.go`
/// ParseResourceLimits and addResourceLimits); `None` for a value buildx
/// leaves out (zero).
pub(crate) fn parse_resource(entry: &str) -> Result<(&'static str, Option<String>), AttrError> {
    let (key, value) = entry.split_once('=').ok_or_else(|| AttrError::ResourceNotKeyValue(entry.to_owned()))?;
    let (key, value) = (key.trim(), value.trim());
    let number = || {
        value.parse::<i64>().map_err(|_| AttrError::ResourceNotInteger { key: key.to_owned(), value: value.to_owned() })
    };
    let size = || {
        crate::units::ram_in_bytes(value)
            .ok_or_else(|| AttrError::ResourceNotSize { key: key.to_owned(), value: value.to_owned() })
    };
    let positive = |n: i64| (n > 0).then(|| n.to_string());
    Ok(match key {
        "memory" => ("memory", positive(size()?)),
        // -1 is unlimited swap.
        "memory-swap" if value == "-1" => ("memswap", Some("-1".into())),
        "memory-swap" => ("memswap", positive(size()?)),
        "cpu-shares" => ("cpushares", positive(number()?)),
        "cpu-period" => ("cpuperiod", positive(number()?)),
        "cpu-quota" => ("cpuquota", positive(number()?)),
        "cpuset-cpus" => ("cpusetcpus", Some(value.to_owned()).filter(|v| !v.is_empty())),
        "cpuset-mems" => ("cpusetmems", Some(value.to_owned()).filter(|v| !v.is_empty())),
        _ => return Err(AttrError::UnknownResource(key.to_owned())),
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
pub(crate) fn parse_call(value: &str) -> Result<Option<CallFunc>, AttrError> {
    let fields = crate::output::csv_fields(value).map_err(AttrError::Csv)?;
    let mut call = CallFunc { name: String::new(), format: None, ignore_status: false };
    for field in fields {
        match field.split_once('=') {
            Some(("format", format)) => {
                if !matches!(format, "json" | "text" | "") {
                    return Err(AttrError::CallFormat(format.to_owned()));
                }
                call.format = Some(format.to_owned()).filter(|f| !f.is_empty());
            }
            Some(("ignorestatus", flag)) => {
                call.ignore_status = crate::gostrconv::parse_bool(flag)
                    .ok_or_else(|| AttrError::NotBool { key: "ignorestatus", value: flag.to_owned() })?
            }
            Some(_) => return Err(AttrError::CallField(field)),
            None if !call.name.is_empty() => return Err(AttrError::CallNames),
            None => call.name = field,
        }
    }
    if call.name == "check" {
        call.name = "lint".into();
    }
    match call.name.as_str() {
        "build" => Ok(None),
        name if CALL_NAMES.contains(&name) => Ok(Some(call)),
        "" => Err(AttrError::CallMissing),
        other => Err(AttrError::UnknownCall(other.to_owned())),
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
        assert!(parse_attest("mode=max").unwrap_err().to_string().contains("type not specified"));
        assert!(parse_attest("type=vex").unwrap_err().to_string().contains("unknown attestation type"));
        assert!(parse_attest("type=provenance,mode=full").unwrap_err().to_string().contains("mode=full"));
        assert!(parse_attest("type=sbom,disabled=maybe").unwrap_err().to_string().contains("not a boolean"));
        assert!(parse_attest("type=sbom,junk").unwrap_err().to_string().contains("key=value"));
    }

    #[test]
    fn errors_are_variants_callers_can_match() {
        assert_eq!(parse_attest("mode=max"), Err(AttrError::MissingAttestType));
        assert_eq!(parse_attest("type=provenance,mode=full"), Err(AttrError::ProvenanceMode("full".into())));
        assert_eq!(
            parse_attest("type=sbom,disabled=maybe"),
            Err(AttrError::NotBool { key: "disabled", value: "maybe".into() })
        );
        assert_eq!(parse_ulimit("nofile=2048:1024"), Err(AttrError::SoftAboveHard { soft: 2048, hard: 1024 }));
        assert_eq!(parse_ulimit("nofile=-1:5"), Err(AttrError::UnlimitedSoftLimit { hard: 5 }));
        assert_eq!(
            parse_resource("memory=lots"),
            Err(AttrError::ResourceNotSize { key: "memory".into(), value: "lots".into() })
        );
        assert_eq!(parse_call("outline,targets"), Err(AttrError::CallNames));
        assert!(matches!(parse_call("a\nb"), Err(AttrError::Csv(_)) | Err(AttrError::UnknownCall(_))));
        // The words stay those the CLI and bake have always shown.
        assert_eq!(
            parse_resource("memory=lots").unwrap_err().to_string(),
            "invalid value \"lots\" for resource memory: expected a size such as 64m, 1g or 1024 (bytes)"
        );
        assert_eq!(ram_in_bytes("x").unwrap_err().to_string(), "expected a size such as 64m, 1g or 1024 (bytes)");
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
        assert!(parse_annotation("layer:k=v").unwrap_err().to_string().contains("unknown annotation type"));
        assert!(parse_annotation("manifest[a b]:k=v").is_err());
    }

    #[test]
    fn ulimits_as_go_units() {
        assert_eq!(parse_ulimit("nofile=1024:2048").unwrap().1, "nofile=1024:2048");
        assert_eq!(parse_ulimit("nproc=64").unwrap().1, "nproc=64:64");
        assert_eq!(parse_ulimit("core=-1").unwrap().1, "core=-1:-1");
        assert!(parse_ulimit("as=1").unwrap_err().to_string().contains("invalid ulimit type"));
        assert!(parse_ulimit("nofile=2048:1024").unwrap_err().to_string().contains("above the hard limit"));
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
        assert!(parse_resource("gpu=1").unwrap_err().to_string().contains("unknown resource"));
        assert!(parse_resource("memory=lots").unwrap_err().to_string().contains("invalid value"));
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
        assert!(parse_call("nope").unwrap_err().to_string().contains("unknown call"));
        assert!(parse_call("outline,targets").unwrap_err().to_string().contains("more than one"));
        assert!(parse_call("outline,format=yaml").is_err());
    }
}
