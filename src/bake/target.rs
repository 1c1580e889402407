//! A bake target as the files describe it: every attribute optional, so that
//! files, `inherits` and `--set` can be layered attribute by attribute the
//! way buildx merges them. Serialised, it is buildx's `--print` JSON (same
//! field names and order, empty fields left out).

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::build::AttrError;

/// Why a target attribute cannot take a value. The words are the
/// attribute's and the value's; the caller adds where (`file:line`, the
/// `--set` value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AttributeError {
    #[error("{0} needs a key: {0}.NAME=VALUE")]
    NeedsKey(String),
    #[error("{0} takes no key")]
    TakesNoKey(String),
    #[error("{key} expects true or false, not {value:?}")]
    NotBool { key: String, value: String },
    #[error(transparent)]
    Attest(#[from] AttrError),
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    #[error("{0:?} is not a size (e.g. 64m, 1g)")]
    NotSize(String),
    #[error("{0} is not a list")]
    NotList(String),
    #[error("{0} is not a map")]
    NotMap(String),
}

/// One target. Lists hold buildx's CSV specs (`type=registry,ref=...`);
/// `--print` shows them as objects, as buildx does.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Target {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// Resolved away before printing.
    #[serde(skip)]
    pub(crate) inherits: Vec<String>,
    /// `KEY=VALUE` or `TYPE:KEY=VALUE`, put on every output (`--annotation`).
    #[serde(skip_serializing_if = "is_empty", serialize_with = "escaped_list")]
    pub(crate) annotations: Option<Vec<String>>,
    /// Attestation specs (`type=provenance,mode=max`), one per type.
    #[serde(skip_serializing_if = "is_empty", serialize_with = "attest_list")]
    pub(crate) attest: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) context: Option<String>,
    #[serde(skip_serializing_if = "is_empty")]
    pub(crate) contexts: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dockerfile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "escaped_text")]
    pub(crate) dockerfile_inline: Option<String>,
    #[serde(skip_serializing_if = "is_empty", serialize_with = "escaped_map")]
    pub(crate) args: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "is_empty", serialize_with = "escaped_map")]
    pub(crate) labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "is_empty")]
    pub(crate) tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty", serialize_with = "csv_list")]
    pub(crate) cache_from: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty", serialize_with = "csv_list")]
    pub(crate) cache_to: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<String>,
    #[serde(rename = "secret", skip_serializing_if = "is_empty", serialize_with = "secret_list")]
    pub(crate) secrets: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty", serialize_with = "ssh_list")]
    pub(crate) ssh: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty")]
    pub(crate) platforms: Option<Vec<String>>,
    #[serde(rename = "output", skip_serializing_if = "is_empty", serialize_with = "csv_list")]
    pub(crate) outputs: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pull: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) no_cache: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<String>,
    #[serde(skip_serializing_if = "is_empty")]
    pub(crate) no_cache_filter: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shm_size: Option<String>,
    #[serde(skip_serializing_if = "is_empty")]
    pub(crate) ulimits: Option<Vec<String>>,
    /// A frontend subrequest instead of a build (`build`, `check`, `outline`, `targets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) call: Option<String>,
    #[serde(skip_serializing_if = "is_empty")]
    pub(crate) entitlements: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty", serialize_with = "escaped_map")]
    pub(crate) extra_hosts: Option<BTreeMap<String, String>>,
}

/// buildx's `Target.MarshalJSON` escapes template markers in the values
/// users write free text into (annotations, args, labels, extra hosts,
/// inline Dockerfiles), so that its output reads back as the same file.
fn escape(text: &str) -> String {
    text.replace("${", "$${").replace("%{", "%%{")
}

fn escaped_text<S: Serializer>(text: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    text.as_deref().map(escape).serialize(serializer)
}

fn escaped_list<S: Serializer>(list: &Option<Vec<String>>, serializer: S) -> Result<S::Ok, S::Error> {
    list.iter().flatten().map(|v| escape(v)).collect::<Vec<_>>().serialize(serializer)
}

fn escaped_map<S: Serializer>(map: &Option<BTreeMap<String, String>>, serializer: S) -> Result<S::Ok, S::Error> {
    map.iter().flatten().map(|(k, v)| (k, escape(v))).collect::<BTreeMap<_, _>>().serialize(serializer)
}

/// Go's `omitempty`, which buildx's `--print` has on every list and map:
/// an unset attribute and an explicitly empty one print alike (nothing).
fn is_empty<T: IsEmpty>(value: &Option<T>) -> bool {
    value.as_ref().is_none_or(IsEmpty::is_empty)
}

trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl IsEmpty for Vec<String> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl IsEmpty for BTreeMap<String, String> {
    fn is_empty(&self) -> bool {
        BTreeMap::is_empty(self)
    }
}

/// The attribute names a bake file and `--set` may use (buildx's, with the
/// aliases buildx accepts in `--set`).
pub(crate) const KEYS: &[&str] = &[
    "description",
    "inherits",
    "context",
    "contexts",
    "dockerfile",
    "dockerfile-inline",
    "args",
    "labels",
    "tags",
    "cache-from",
    "cache-to",
    "target",
    "secret",
    "ssh",
    "platforms",
    "output",
    "pull",
    "no-cache",
    "network",
    "no-cache-filter",
    "shm-size",
    "ulimits",
    "entitlements",
    "extra-hosts",
    "annotations",
    "attest",
    "call",
    // Read by the HCL loader, not attributes of the target.
    "matrix",
    "name",
];

impl Target {
    /// Layers `over` on top of `self`: a value set in `over` wins; maps are
    /// merged key by key (buildx's `Target.Merge`).
    pub(crate) fn merge(&mut self, over: &Target) {
        fn opt<T: Clone>(base: &mut Option<T>, over: &Option<T>) {
            if over.is_some() {
                base.clone_from(over);
            }
        }
        fn map(base: &mut Option<BTreeMap<String, String>>, over: &Option<BTreeMap<String, String>>) {
            if let Some(over) = over {
                let base = base.get_or_insert_with(BTreeMap::new);
                base.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        // Lists buildx appends to rather than replaces.
        fn append(base: &mut Option<Vec<String>>, over: &Option<Vec<String>>) {
            if let Some(over) = over {
                base.get_or_insert_with(Vec::new).extend(over.iter().cloned());
            }
        }
        opt(&mut self.description, &over.description);
        append(&mut self.annotations, &over.annotations);
        if let Some(over) = &over.attest {
            let base = self.attest.get_or_insert_with(Vec::new);
            base.extend(over.iter().cloned());
            *base = dedup_attests(std::mem::take(base));
        }
        opt(&mut self.call, &over.call);
        opt(&mut self.context, &over.context);
        map(&mut self.contexts, &over.contexts);
        opt(&mut self.dockerfile, &over.dockerfile);
        opt(&mut self.dockerfile_inline, &over.dockerfile_inline);
        map(&mut self.args, &over.args);
        map(&mut self.labels, &over.labels);
        opt(&mut self.tags, &over.tags);
        opt(&mut self.cache_from, &over.cache_from);
        opt(&mut self.cache_to, &over.cache_to);
        opt(&mut self.target, &over.target);
        opt(&mut self.secrets, &over.secrets);
        opt(&mut self.ssh, &over.ssh);
        opt(&mut self.platforms, &over.platforms);
        opt(&mut self.outputs, &over.outputs);
        opt(&mut self.pull, &over.pull);
        opt(&mut self.no_cache, &over.no_cache);
        opt(&mut self.network, &over.network);
        opt(&mut self.no_cache_filter, &over.no_cache_filter);
        opt(&mut self.shm_size, &over.shm_size);
        append(&mut self.ulimits, &over.ulimits);
        append(&mut self.entitlements, &over.entitlements);
        map(&mut self.extra_hosts, &over.extra_hosts);
        if !over.inherits.is_empty() {
            self.inherits.clone_from(&over.inherits);
        }
    }

    /// Sets one attribute from a string value, as `--set` and the
    /// attribute-by-attribute readers do. `sub` is the map key of
    /// `args.KEY`-style attributes. Lists get one more item per call
    /// (`append` false replaces what the file said on the first call).
    pub(crate) fn set(
        &mut self,
        key: &str,
        sub: Option<&str>,
        value: &str,
        append: bool,
    ) -> Result<(), AttributeError> {
        fn list(slot: &mut Option<Vec<String>>, value: &str, append: bool) {
            let list = slot.get_or_insert_with(Vec::new);
            if !append {
                list.clear();
            }
            // `--set t.cache-from=` clears the list, as in buildx.
            if !value.is_empty() {
                list.push(value.to_string());
            }
        }
        fn map(
            slot: &mut Option<BTreeMap<String, String>>,
            key: &str,
            sub: Option<&str>,
            value: &str,
        ) -> Result<(), AttributeError> {
            let sub = sub.filter(|s| !s.is_empty()).ok_or_else(|| AttributeError::NeedsKey(key.to_owned()))?;
            slot.get_or_insert_with(BTreeMap::new).insert(sub.to_string(), value.to_string());
            Ok(())
        }
        fn boolean(key: &str, value: &str) -> Result<bool, AttributeError> {
            crate::gostrconv::parse_bool(value)
                .ok_or_else(|| AttributeError::NotBool { key: key.to_owned(), value: value.to_owned() })
        }
        if sub.is_some() && !matches!(key, "args" | "labels" | "contexts" | "extra-hosts") {
            return Err(AttributeError::TakesNoKey(key.to_owned()));
        }
        match key {
            "description" => self.description = Some(value.into()),
            "context" => self.context = Some(value.into()),
            "contexts" => map(&mut self.contexts, key, sub, value)?,
            "dockerfile" => self.dockerfile = Some(value.into()),
            "dockerfile-inline" => self.dockerfile_inline = Some(value.into()),
            "args" => map(&mut self.args, key, sub, value)?,
            "labels" => map(&mut self.labels, key, sub, value)?,
            "extra-hosts" => map(&mut self.extra_hosts, key, sub, value)?,
            "tags" => list(&mut self.tags, value, append),
            "cache-from" => list(&mut self.cache_from, value, append),
            "cache-to" => list(&mut self.cache_to, value, append),
            "target" => self.target = Some(value.into()),
            "secrets" | "secret" => list(&mut self.secrets, value, append),
            "ssh" => list(&mut self.ssh, value, append),
            "platform" | "platforms" => list(&mut self.platforms, value, append),
            "output" | "outputs" => list(&mut self.outputs, value, append),
            "pull" => self.pull = Some(boolean(key, value)?),
            "no-cache" => self.no_cache = Some(boolean(key, value)?),
            "network" => self.network = Some(value.into()),
            "no-cache-filter" => list(&mut self.no_cache_filter, value, append),
            "shm-size" => self.shm_size = Some(value.into()),
            "ulimits" => list(&mut self.ulimits, value, append),
            // buildx adds these to the file's list; an empty value clears it.
            "entitlements" | "entitlement" | "annotations" | "annotation" => {
                let slot = if key.starts_with('e') { &mut self.entitlements } else { &mut self.annotations };
                list(slot, value, true);
                if value.is_empty() {
                    *slot = None;
                }
            }
            "attest" => {
                if value.is_empty() {
                    self.attest = None;
                } else {
                    crate::build::attrs::parse_attest(value)?;
                    let list = self.attest.get_or_insert_with(Vec::new);
                    list.push(value.to_string());
                    *list = dedup_attests(std::mem::take(list));
                }
            }
            "call" => self.call = Some(value.into()),
            "push" => {
                if boolean(key, value)? {
                    self.push();
                }
            }
            "load" => {
                if boolean(key, value)? {
                    self.load();
                }
            }
            _ => return Err(AttributeError::UnknownKey(key.to_owned())),
        }
        Ok(())
    }

    /// buildx's `Target.normalize`, once a target is resolved: lists lose
    /// repeated and empty items, `network = "host"` asks for the
    /// `network.host` entitlement, and contexts set to "" are dropped.
    pub(crate) fn normalize(&mut self) {
        fn dedup(list: &mut Option<Vec<String>>) {
            if let Some(items) = list {
                let mut seen = std::collections::BTreeSet::new();
                items.retain(|item| !item.is_empty() && seen.insert(item.clone()));
            }
        }
        for list in
            [&mut self.annotations, &mut self.tags, &mut self.platforms, &mut self.no_cache_filter, &mut self.ulimits]
        {
            dedup(list);
        }
        if self.network.as_deref() == Some("host") {
            self.entitlements.get_or_insert_with(Vec::new).push("network.host".into());
        }
        dedup(&mut self.entitlements);
        if let Some(contexts) = &mut self.contexts {
            contexts.retain(|_, value| !value.is_empty());
        }
    }

    /// `--load` (`*.load=true`): a `type=docker` output, the image loaded into
    /// docker, unless an output already loads or one is neither an image
    /// nor a docker or OCI archive (buildx's `setLoadOverride`).
    pub(crate) fn load(&mut self) {
        let outputs = self.outputs.get_or_insert_with(Vec::new);
        for output in outputs.iter() {
            let fields = crate::output::csv_fields(output).unwrap_or_default();
            let field = |key: &str| {
                fields
                    .iter()
                    .find_map(|f| f.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.to_owned()))
            };
            match field("type").as_deref() {
                Some("docker") if field("dest").is_none_or(|d| d.is_empty()) => return,
                Some("image" | "registry" | "oci") | Some("docker") => {}
                _ => return,
            }
        }
        outputs.push("type=docker".into());
    }

    /// `--push`: every image output pushes; a target without outputs gets
    /// one (buildx's `*.push=true`).
    pub(crate) fn push(&mut self) {
        let outputs = self.outputs.get_or_insert_with(Vec::new);
        let mut any_image = false;
        for output in outputs.iter_mut() {
            let fields = crate::output::csv_fields(output).unwrap_or_default();
            let is_image = fields.iter().any(|f| f == "type=image" || f == "type=registry");
            if is_image {
                any_image = true;
                if !fields.iter().any(|f| f.starts_with("push=")) {
                    output.push_str(",push=true");
                }
            }
        }
        if !any_image {
            outputs.push("type=image,push=true".into());
        }
    }
}

/// A CSV spec as buildx prints it: an object of its fields, a bare value
/// being a registry reference (`cache-from: ["r/cache"]`).
fn csv_object(spec: &str) -> BTreeMap<String, String> {
    let fields = crate::output::csv_fields(spec).unwrap_or_else(|_| vec![spec.to_string()]);
    let mut object = BTreeMap::new();
    for field in fields {
        match field.split_once('=') {
            Some((key, value)) => object.insert(key.trim().to_string(), value.to_string()),
            None => {
                object.insert("type".to_string(), "registry".to_string());
                object.insert("ref".to_string(), field)
            }
        };
    }
    object
}

fn csv_list<S: Serializer>(list: &Option<Vec<String>>, serializer: S) -> Result<S::Ok, S::Error> {
    let objects: Vec<_> = list.iter().flatten().map(|spec| csv_object(spec)).collect();
    objects.serialize(serializer)
}

/// Secrets as buildx prints them: `id` first, then `src` or `env`.
fn secret_list<S: Serializer>(list: &Option<Vec<String>>, serializer: S) -> Result<S::Ok, S::Error> {
    struct Secret(BTreeMap<String, String>);
    impl Serialize for Secret {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(None)?;
            for key in ["id", "src", "env"] {
                if let Some(value) = self.0.get(key) {
                    map.serialize_entry(key, value)?;
                }
            }
            for (key, value) in self.0.iter().filter(|(k, _)| !["id", "src", "env"].contains(&k.as_str())) {
                map.serialize_entry(key, value)?;
            }
            map.end()
        }
    }
    let items: Vec<_> = list.iter().flatten().map(|spec| Secret(csv_object(spec))).collect();
    items.serialize(serializer)
}

/// buildx's `removeAttestDupes`: one spec per type, a later one taking
/// the earlier one's place.
pub(crate) fn dedup_attests(specs: Vec<String>) -> Vec<String> {
    let kind = |spec: &str| crate::build::attrs::parse_attest(spec).map(|a| a.kind).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for spec in specs {
        match out.iter().position(|s| kind(s) == kind(&spec)) {
            Some(at) => out[at] = spec,
            None => out.push(spec),
        }
    }
    out
}

/// Attestations as buildx prints them: objects with sorted keys, `disabled` a boolean.
fn attest_list<S: Serializer>(list: &Option<Vec<String>>, serializer: S) -> Result<S::Ok, S::Error> {
    let items: Vec<BTreeMap<String, serde_json::Value>> = list
        .iter()
        .flatten()
        .map(|spec| {
            csv_object(spec)
                .into_iter()
                // Go's omitempty: `disabled=false` is not printed.
                .filter(|(k, v)| !(k == "disabled" && crate::gostrconv::parse_bool(v) == Some(false)))
                .map(|(k, v)| {
                    let value = match (k.as_str(), crate::gostrconv::parse_bool(&v)) {
                        ("disabled", Some(b)) => serde_json::Value::Bool(b),
                        _ => serde_json::Value::String(v),
                    };
                    (k, value)
                })
                .collect()
        })
        .collect();
    items.serialize(serializer)
}

/// A bake or compose size (`shm-size`, `shm_size`) as go-units'
/// `RAMInBytes` reads it ([`crate::units::ram_in_bytes`]), surrounding
/// spaces aside.
pub(crate) fn ram_in_bytes(text: &str) -> Result<i64, AttributeError> {
    crate::units::ram_in_bytes(text.trim()).ok_or_else(|| AttributeError::NotSize(text.to_owned()))
}

/// Bytes as go-units' `BytesSize` writes them (`128MiB`, `1.5GiB`): what
/// buildx prints for a compose `shm_size`.
pub(crate) fn bytes_size(bytes: i64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    // Go's %.4g: four significant digits, trailing zeros dropped.
    let decimals = match value {
        v if v >= 1000.0 => 0,
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// `default`, `id=PATH,PATH2` → `{"id": ..., "paths": [...]}` as buildx prints SSH specs.
fn ssh_list<S: Serializer>(list: &Option<Vec<String>>, serializer: S) -> Result<S::Ok, S::Error> {
    struct Ssh<'a>(&'a str);
    impl Serialize for Ssh<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let (id, paths) = match self.0.split_once('=') {
                Some((id, paths)) => (id, paths.split(',').collect::<Vec<_>>()),
                None => (self.0, Vec::new()),
            };
            let mut map = serializer.serialize_map(None)?;
            map.serialize_entry("id", id)?;
            if !paths.is_empty() {
                map.serialize_entry("paths", &paths)?;
            }
            map.end()
        }
    }
    let items: Vec<_> = list.iter().flatten().map(|s| Ssh(s)).collect();
    items.serialize(serializer)
}

impl Target {
    /// Marks a list attribute as set and empty (`tags = []`).
    pub(crate) fn set_empty_list(&mut self, key: &str) -> Result<(), AttributeError> {
        let slot = match key {
            "tags" => &mut self.tags,
            "cache-from" => &mut self.cache_from,
            "cache-to" => &mut self.cache_to,
            "secret" | "secrets" => &mut self.secrets,
            "ssh" => &mut self.ssh,
            "platform" | "platforms" => &mut self.platforms,
            "output" | "outputs" => &mut self.outputs,
            "no-cache-filter" => &mut self.no_cache_filter,
            "ulimits" => &mut self.ulimits,
            "entitlements" => &mut self.entitlements,
            "annotations" => &mut self.annotations,
            "attest" => &mut self.attest,
            _ => return Err(AttributeError::NotList(key.to_owned())),
        };
        slot.get_or_insert_with(Vec::new).clear();
        Ok(())
    }

    /// Marks a map attribute as set (`args = {}`).
    pub(crate) fn set_empty_map(&mut self, key: &str) -> Result<(), AttributeError> {
        let slot = match key {
            "args" => &mut self.args,
            "labels" => &mut self.labels,
            "contexts" => &mut self.contexts,
            "extra-hosts" => &mut self.extra_hosts,
            _ => return Err(AttributeError::NotMap(key.to_owned())),
        };
        slot.get_or_insert_with(BTreeMap::new);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_layers_maps_key_by_key() {
        let mut base = Target {
            args: Some([("A".into(), "1".into())].into()),
            tags: Some(vec!["x".into()]),
            ..Default::default()
        };
        let over = Target {
            args: Some([("B".into(), "2".into())].into()),
            tags: Some(vec!["y".into()]),
            ..Default::default()
        };
        base.merge(&over);
        assert_eq!(base.args.unwrap().len(), 2);
        assert_eq!(base.tags.unwrap(), ["y"]);
    }

    #[test]
    fn load_adds_a_docker_output_as_buildx() {
        let loaded = |outputs: &[&str]| {
            let mut t = Target::default();
            if !outputs.is_empty() {
                t.outputs = Some(outputs.iter().map(|o| o.to_string()).collect());
            }
            t.load();
            t.outputs.unwrap_or_default()
        };
        assert_eq!(loaded(&[]), ["type=docker"]);
        assert_eq!(loaded(&["type=image,push=true"]), ["type=image,push=true", "type=docker"]);
        assert_eq!(loaded(&["type=docker,dest=a.tar"]), ["type=docker,dest=a.tar", "type=docker"]);
        assert_eq!(loaded(&["type=docker"]), ["type=docker"], "already loads");
        assert_eq!(loaded(&["type=local,dest=out"]), ["type=local,dest=out"], "not an image: left alone");
    }

    #[test]
    fn push_adds_or_marks_image_outputs() {
        let mut t = Target::default();
        t.push();
        assert_eq!(t.outputs.as_deref().unwrap(), ["type=image,push=true"]);
        let mut t = Target { outputs: Some(vec!["type=image,name=x".into()]), ..Default::default() };
        t.push();
        assert_eq!(t.outputs.as_deref().unwrap(), ["type=image,name=x,push=true"]);
    }

    #[test]
    fn sizes_as_docker_reads_and_writes_them() {
        assert_eq!(ram_in_bytes("128m").unwrap(), 128 << 20);
        assert_eq!(ram_in_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("512").unwrap(), 512);
        assert!(ram_in_bytes("lots").is_err());
        assert_eq!(bytes_size(128 << 20), "128MiB");
        assert_eq!(bytes_size(3 << 29), "1.5GiB");
    }

    #[test]
    fn prints_csv_specs_as_objects() {
        let t = Target { cache_from: Some(vec!["r/cache".into(), "type=local,src=d".into()]), ..Default::default() };
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["cache-from"][0]["ref"], "r/cache");
        assert_eq!(json["cache-from"][1]["src"], "d");
    }
}
