//! Writing buildx's builder store, so that a builder of several nodes made by
//! `fbuild builder create/append` is one `docker buildx ls` lists and uses,
//! and one `docker buildx create --append` made is one fbuild uses.
//!
//! The files are buildx v0.38.2's (`store/store.go`, `store/nodegroup.go`):
//! `instances/<name>` holds the builder (`NodeGroup`) as Go's
//! `json.Marshal` writes it, `activity/<name>` the last change
//! (RFC 3339), and every change happens under an exclusive `flock` of
//! `.lock`, as buildx's `Txn` takes it. Only remote-driver builders are
//! written: the only driver whose nodes are addresses fbuild can dial.
//!
//! What buildx has no field for (a node's weight, the builder's shared
//! registry cache) lives beside the store in `fbuild/pools/<name>.json`:
//! buildx's remote driver refuses unknown driver options, so putting them
//! there would break the builder for buildx.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::registry::oci::Platform;

/// The builder store could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The name cannot be a builder's or a node's (buildx's `ValidateName`).
    #[error("invalid name {name:?}: a name starts with a letter and holds only letters, digits and . _ -")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No builder of that name.
    #[error("no builder named {name:?} in {}", dir.display())]
    NotFound {
        /// The builder.
        name: String,
        /// The store's `instances` folder.
        dir: PathBuf,
    },
    /// `create` of a name the store already holds.
    #[error("a builder named {name:?} exists already; add nodes with `fbuild builder append {name}`")]
    Exists {
        /// The builder.
        name: String,
    },
    /// Two nodes of one builder with the same name.
    #[error("builder {builder:?} has a node named {node:?} already")]
    DuplicateNode {
        /// The builder.
        builder: String,
        /// The node.
        node: String,
    },
    /// Two nodes of one builder at the same address.
    #[error("builder {builder:?}: node {existing:?} is at {endpoint} already")]
    DuplicateEndpoint {
        /// The builder.
        builder: String,
        /// The node that has the address.
        existing: String,
        /// The address.
        endpoint: String,
    },
    /// A node that is not in the builder.
    #[error("builder {builder:?} has no node named {node:?}")]
    NoSuchNode {
        /// The builder.
        builder: String,
        /// The node.
        node: String,
    },
    /// Removing the only node.
    #[error("node {node:?} is the last node of builder {builder:?}; remove the builder instead")]
    LastNode {
        /// The builder.
        builder: String,
        /// The node.
        node: String,
    },
    /// A builder of another driver.
    #[error("builder {name:?} uses the {driver} driver; fbuild adds nodes only to remote-driver builders")]
    NotRemote {
        /// The builder.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// A node option that cannot be used.
    #[error("node {node:?}: {problem}")]
    NodeOption {
        /// The node.
        node: String,
        /// What is wrong.
        problem: String,
    },
    /// A store file that cannot be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// `read`, `write`, `lock`, ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A store file that is not buildx's JSON.
    #[error("{} is not a buildx builder file", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// One builder file (`store.NodeGroup`), every field kept, in Go's order,
/// so that rewriting a builder buildx made loses nothing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NodeGroup {
    pub(crate) name: String,
    pub(crate) driver: String,
    #[serde(default, deserialize_with = "null_as_default", serialize_with = "empty_as_null")]
    pub(crate) nodes: Vec<Node>,
    #[serde(default)]
    pub(crate) dynamic: bool,
}

/// One node (`store.Node`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Node {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) endpoint: String,
    #[serde(default, deserialize_with = "null_as_default", serialize_with = "empty_as_null")]
    pub(crate) platforms: Vec<Platform>,
    #[serde(default, deserialize_with = "null_as_default", serialize_with = "empty_map_as_null")]
    pub(crate) driver_opts: BTreeMap<String, String>,
    /// `BuildkitdFlags`, which buildx files as `Flags`.
    #[serde(default)]
    pub(crate) flags: serde_json::Value,
    /// Config files by name, base64 as Go writes `[]byte`.
    #[serde(default)]
    pub(crate) files: serde_json::Value,
}

/// What fbuild keeps beside a builder: weights and the shared cache.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolExtras {
    /// The registry cache every build on the builder imports and exports
    /// (`REPOSITORY`, one tag per route key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cache: Option<String>,
    /// Weights by node name; a node not named weighs 1.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) weights: BTreeMap<String, u32>,
}

/// Go writes a nil map or slice as `null`.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A nil slice, as Go marshals it.
fn empty_as_null<S: serde::Serializer, T: serde::Serialize>(value: &[T], s: S) -> Result<S::Ok, S::Error> {
    if value.is_empty() {
        s.serialize_none()
    } else {
        s.collect_seq(value)
    }
}

fn empty_map_as_null<S: serde::Serializer>(value: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    if value.is_empty() {
        s.serialize_none()
    } else {
        s.collect_map(value)
    }
}

/// buildx's `ValidateName`: the name, in lower case, as buildx files it.
pub(crate) fn validate_name(name: &str) -> Result<String, StoreError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(StoreError::InvalidName { name: name.to_string() })
    }
}

/// buildx's builder store at one folder.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

/// The store's lock, held while reading and changing files.
pub(crate) struct Locked<'a> {
    store: &'a Store,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Store {
    /// The store at `dir` (see [`crate::connect::builders::store_dir`]).
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// The store's folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes buildx's lock (`.lock`, exclusive), creating the folders as
    /// buildx's `store.New` does (0700).
    pub(crate) fn lock(&self) -> Result<Locked<'_>, StoreError> {
        for sub in ["", "instances", "defaults", "activity"] {
            let path = self.dir.join(sub);
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&path).map_err(|source| StoreError::Io {
                action: "create",
                path,
                source,
            })?;
        }
        let path = self.dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Io { action: "open", path: path.clone(), source })?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| StoreError::Io { action: "lock", path, source: errno.into() })?;
        Ok(Locked { store: self, _lock: lock })
    }
}

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};

impl Locked<'_> {
    fn instance_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        Ok(self.store.dir.join("instances").join(validate_name(name)?))
    }

    fn extras_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        Ok(self.store.dir.join("fbuild/pools").join(format!("{}.json", validate_name(name)?)))
    }

    /// The builder `name`.
    pub(crate) fn load(&self, name: &str) -> Result<NodeGroup, StoreError> {
        let path = self.instance_path(name)?;
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { name: name.to_string(), dir: self.store.dir.join("instances") })
            }
            Err(source) => return Err(StoreError::Io { action: "read", path, source }),
        };
        serde_json::from_slice(&text).map_err(|source| StoreError::Parse { path, source })
    }

    /// Whether a builder `name` exists.
    pub(crate) fn exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.instance_path(name)?.exists())
    }

    /// Every builder, by name (buildx's `List`).
    pub(crate) fn list(&self) -> Result<Vec<NodeGroup>, StoreError> {
        let dir = self.store.dir.join("instances");
        let entries = std::fs::read_dir(&dir).map_err(|source| StoreError::Io { action: "read", path: dir, source })?;
        let mut groups = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_ok() {
                groups.push(self.load(&name)?);
            }
        }
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// Writes the builder (atomically) and its activity stamp, as buildx's
    /// `Txn.Save`.
    pub(crate) fn save(&self, group: &NodeGroup) -> Result<(), StoreError> {
        let name = validate_name(&group.name)?;
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        write_atomic(&self.store.dir.join("activity").join(&name), now.as_bytes())?;
        let json = serde_json::to_vec(group)
            .map_err(|source| StoreError::Parse { path: self.store.dir.join("instances").join(&name), source })?;
        write_atomic(&self.store.dir.join("instances").join(&name), &json)
    }

    /// Removes the builder, its activity stamp and fbuild's side file.
    pub(crate) fn remove(&self, name: &str) -> Result<(), StoreError> {
        let name = validate_name(name)?;
        for path in [
            self.store.dir.join("instances").join(&name),
            self.store.dir.join("activity").join(&name),
            self.extras_path(&name)?,
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { action: "remove", path, source }),
            }
        }
        Ok(())
    }

    /// fbuild's side file of builder `name` (empty when there is none).
    pub(crate) fn extras(&self, name: &str) -> Result<PoolExtras, StoreError> {
        read_extras(&self.store.dir, name)
    }

    /// Writes fbuild's side file of builder `name` (removes it when empty).
    pub(crate) fn save_extras(&self, name: &str, extras: &PoolExtras) -> Result<(), StoreError> {
        let path = self.extras_path(name)?;
        if *extras == PoolExtras::default() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(StoreError::Io { action: "remove", path, source: e })
                }
                _ => Ok(()),
            };
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                action: "create",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let json =
            serde_json::to_vec_pretty(extras).map_err(|source| StoreError::Parse { path: path.clone(), source })?;
        write_atomic(&path, &json)
    }
}

/// fbuild's side file of builder `name` in the store at `dir`, read
/// without the lock (files are replaced whole, never written in place), so
/// that using a builder creates nothing in the store.
pub(crate) fn read_extras(dir: &Path, name: &str) -> Result<PoolExtras, StoreError> {
    let path = dir.join("fbuild/pools").join(format!("{}.json", validate_name(name)?));
    match std::fs::read(&path) {
        Ok(text) => serde_json::from_slice(&text).map_err(|source| StoreError::Parse { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PoolExtras::default()),
        Err(source) => Err(StoreError::Io { action: "read", path, source }),
    }
}

/// Writes `bytes` to a temporary file beside `path` (0600) and renames it
/// over `path`, so buildx never reads half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let io = |action, source| StoreError::Io { action, path: path.to_path_buf(), source };
    let mut file = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| io("write", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    file.as_file().sync_all().map_err(|e| io("write", e))?;
    file.persist(path).map_err(|e| io("write", e.error))?;
    Ok(())
}

use std::os::unix::fs::PermissionsExt as _;

/// A node to add: what `fbuild builder create/append` was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeSpec {
    /// The node's name; `<builder><n>` when not given, as buildx names nodes.
    pub(crate) name: Option<String>,
    /// `unix://` or `tcp://` address.
    pub(crate) endpoint: String,
    /// TLS files, kept as the remote driver's options.
    pub(crate) tls: crate::connect::TlsOptions,
    /// Platforms the node builds (`linux/amd64`, ...); empty: what its workers say.
    pub(crate) platforms: Vec<String>,
    /// Share of the builds relative to the other nodes (default 1).
    pub(crate) weight: Option<u32>,
}

impl NodeGroup {
    /// A node built from `spec`, checked: a valid name and address, absolute
    /// TLS files, platforms containerd can parse, a weight of at least 1.
    fn node_from(&self, spec: &NodeSpec) -> Result<Node, StoreError> {
        let name = match &spec.name {
            Some(name) => validate_name(name)?,
            None => (0..).map(|i| format!("{}{i}", self.name)).find(|n| self.find(n).is_none()).unwrap_or_default(),
        };
        let problem = |problem: String| StoreError::NodeOption { node: name.clone(), problem };
        spec.endpoint
            .parse::<crate::connect::Address>()
            .map_err(|e| problem(format!("invalid address {:?}: {e}", spec.endpoint)))?;
        let mut driver_opts = BTreeMap::new();
        for (option, file) in [("cacert", &spec.tls.ca_cert), ("cert", &spec.tls.cert), ("key", &spec.tls.key)] {
            if let Some(file) = file {
                if !file.is_absolute() {
                    return Err(problem(format!("{option} {:?} is not an absolute path", file.display())));
                }
                driver_opts.insert(option.to_string(), file.display().to_string());
            }
        }
        if let Some(server_name) = &spec.tls.server_name {
            driver_opts.insert("servername".into(), server_name.clone());
        }
        let mut platforms = Vec::new();
        for text in spec.platforms.iter().flat_map(|p| p.split(',')).filter(|p| !p.trim().is_empty()) {
            let parsed = crate::dockerfile::compile::parse_platform(text.trim()).map_err(|e| problem(e.to_string()))?;
            let platform = Platform {
                architecture: parsed.architecture,
                os: parsed.os,
                variant: parsed.variant,
                ..Default::default()
            };
            if !platforms.contains(&platform) {
                platforms.push(platform);
            }
        }
        if spec.weight == Some(0) {
            return Err(problem("a weight is at least 1".into()));
        }
        Ok(Node {
            name,
            endpoint: spec.endpoint.clone(),
            platforms,
            driver_opts,
            flags: serde_json::Value::Null,
            files: serde_json::Value::Null,
        })
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Adds a node as buildx's `NodeGroup.Update` in append mode: names and
    /// addresses unique, and the platforms the new node names taken off the
    /// other nodes (buildx pins a platform to one node).
    pub(crate) fn append(&mut self, spec: &NodeSpec) -> Result<&Node, StoreError> {
        if self.driver != "remote" {
            return Err(StoreError::NotRemote { name: self.name.clone(), driver: self.driver.clone() });
        }
        let node = self.node_from(spec)?;
        if self.find(&node.name).is_some() {
            return Err(StoreError::DuplicateNode { builder: self.name.clone(), node: node.name });
        }
        if let Some(existing) = self.nodes.iter().find(|n| n.endpoint == node.endpoint) {
            return Err(StoreError::DuplicateEndpoint {
                builder: self.name.clone(),
                existing: existing.name.clone(),
                endpoint: node.endpoint,
            });
        }
        for other in &mut self.nodes {
            other.platforms.retain(|p| !node.platforms.contains(p));
        }
        self.nodes.push(node);
        Ok(self.nodes.last().expect("just pushed"))
    }

    /// Removes node `name` (buildx's `Leave`).
    pub(crate) fn leave(&mut self, name: &str) -> Result<(), StoreError> {
        let index = self
            .find(name)
            .ok_or_else(|| StoreError::NoSuchNode { builder: self.name.clone(), node: name.to_string() })?;
        if self.nodes.len() == 1 {
            return Err(StoreError::LastNode { builder: self.name.clone(), node: name.to_string() });
        }
        self.nodes.remove(index);
        Ok(())
    }
}

/// `fbuild builder create`: a new remote-driver builder of one node.
pub(crate) fn create(
    store: &Store,
    name: &str,
    node: &NodeSpec,
    cache: Option<String>,
) -> Result<NodeGroup, StoreError> {
    let name = validate_name(name)?;
    let locked = store.lock()?;
    if locked.exists(&name)? {
        return Err(StoreError::Exists { name });
    }
    let mut group = NodeGroup { name: name.clone(), driver: "remote".into(), nodes: Vec::new(), dynamic: false };
    let node_name = group.append(node)?.name.clone();
    let mut extras = PoolExtras { cache, ..PoolExtras::default() };
    if let Some(weight) = node.weight {
        extras.weights.insert(node_name, weight);
    }
    // The side file first: a builder file without it is a complete builder.
    locked.save_extras(&name, &extras)?;
    locked.save(&group)?;
    Ok(group)
}

/// `fbuild builder append`: one more node in an existing builder.
pub(crate) fn append(store: &Store, name: &str, node: &NodeSpec) -> Result<NodeGroup, StoreError> {
    let locked = store.lock()?;
    let mut group = locked.load(name)?;
    let node_name = group.append(node)?.name.clone();
    let mut extras = locked.extras(&group.name)?;
    extras.weights.remove(&node_name);
    if let Some(weight) = node.weight {
        extras.weights.insert(node_name, weight);
    }
    locked.save_extras(&group.name, &extras)?;
    locked.save(&group)?;
    Ok(group)
}

/// `fbuild builder rm NAME [--node NODE]`.
pub(crate) fn remove(store: &Store, name: &str, node: Option<&str>) -> Result<(), StoreError> {
    let locked = store.lock()?;
    let mut group = locked.load(name)?;
    match node {
        None => locked.remove(&group.name),
        Some(node) => {
            group.leave(node)?;
            let mut extras = locked.extras(&group.name)?;
            extras.weights.remove(node);
            locked.save_extras(&group.name, &extras)?;
            locked.save(&group)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, endpoint: &str, platforms: &[&str]) -> NodeSpec {
        NodeSpec {
            name: Some(name.into()),
            endpoint: endpoint.into(),
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
            ..NodeSpec::default()
        }
    }

    #[test]
    fn a_builder_is_written_as_go_marshals_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut node = spec("n1", "tcp://127.0.0.1:1234", &["linux/amd64"]);
        node.tls.ca_cert = Some("/certs/ca.pem".into());
        create(&store, "Pool", &node, Some("127.0.0.1:5000/cache".into())).unwrap();
        let text = std::fs::read_to_string(dir.path().join("instances/pool")).unwrap();
        assert_eq!(
            text,
            r#"{"Name":"pool","Driver":"remote","Nodes":[{"Name":"n1","Endpoint":"tcp://127.0.0.1:1234","Platforms":[{"architecture":"amd64","os":"linux"}],"DriverOpts":{"cacert":"/certs/ca.pem"},"Flags":null,"Files":null}],"Dynamic":false}"#
        );
        assert!(dir.path().join("activity/pool").exists());
        let extras = store.lock().unwrap().extras("pool").unwrap();
        assert_eq!(extras.cache.as_deref(), Some("127.0.0.1:5000/cache"));
    }

    #[test]
    fn nodes_are_unique_by_name_and_address_and_platforms_pinned_to_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        create(&store, "p", &spec("a", "tcp://h:1", &["linux/amd64", "linux/arm64"]), None).unwrap();
        let err = append(&store, "p", &spec("a", "tcp://h:2", &[])).unwrap_err();
        assert_eq!(err.to_string(), r#"builder "p" has a node named "a" already"#);
        let err = append(&store, "p", &spec("b", "tcp://h:1", &[])).unwrap_err();
        assert_eq!(err.to_string(), r#"builder "p": node "a" is at tcp://h:1 already"#);
        let mut weighted = spec("b", "tcp://h:2", &["linux/arm64/v8"]);
        weighted.weight = Some(3);
        let group = append(&store, "p", &weighted).unwrap();
        assert_eq!(group.nodes[0].platforms.iter().map(Platform::format).collect::<Vec<_>>(), ["linux/amd64"]);
        assert_eq!(group.nodes[1].platforms.iter().map(Platform::format).collect::<Vec<_>>(), ["linux/arm64"]);
        assert_eq!(store.lock().unwrap().extras("p").unwrap().weights["b"], 3);
        // Unnamed nodes get buildx's names.
        let group = append(&store, "p", &NodeSpec { endpoint: "tcp://h:3".into(), ..NodeSpec::default() }).unwrap();
        assert_eq!(group.nodes[2].name, "p0");
        remove(&store, "p", Some("b")).unwrap();
        assert!(store.lock().unwrap().extras("p").unwrap().weights.is_empty());
        remove(&store, "p", Some("p0")).unwrap();
        let err = remove(&store, "p", Some("a")).unwrap_err();
        assert!(matches!(err, StoreError::LastNode { .. }), "{err}");
        remove(&store, "p", None).unwrap();
        assert!(matches!(store.lock().unwrap().load("p"), Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn bad_nodes_are_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let err = create(&store, "p", &spec("a", "http://h", &[]), None).unwrap_err();
        assert!(err.to_string().starts_with(r#"node "a": invalid address "http://h""#), "{err}");
        let mut relative = spec("a", "tcp://h:1", &[]);
        relative.tls.key = Some("key.pem".into());
        let err = create(&store, "p", &relative, None).unwrap_err();
        assert_eq!(err.to_string(), r#"node "a": key "key.pem" is not an absolute path"#);
        let mut zero = spec("a", "tcp://h:1", &[]);
        zero.weight = Some(0);
        assert!(create(&store, "p", &zero, None).is_err());
        assert!(matches!(
            create(&store, "9p", &spec("a", "tcp://h:1", &[]), None),
            Err(StoreError::InvalidName { .. })
        ));
        create(&store, "p", &spec("a", "tcp://h:1", &[]), None).unwrap();
        assert!(matches!(create(&store, "P", &spec("a", "tcp://h:1", &[]), None), Err(StoreError::Exists { .. })));
    }

    #[test]
    fn a_builder_buildx_wrote_round_trips() {
        let text = r#"{"Name":"x","Driver":"remote","Nodes":[{"Name":"x0","Endpoint":"unix:///s","Platforms":null,"DriverOpts":null,"Flags":["--debug"],"Files":{"buildkitd.toml":"YQ=="}}],"Dynamic":false}"#;
        let group: NodeGroup = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&group).unwrap(), text);
    }
}
