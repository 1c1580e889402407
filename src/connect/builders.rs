//! buildx's builder store, read so that a builder made with
//! `docker buildx create --driver remote ADDR` (by hand or by a CI action)
//! reaches fbuild unchanged: `--builder NAME`, `BUILDX_BUILDER`, or buildx's
//! current builder.
//!
//! The store is buildx v0.38.2's (`store/store.go`, `store/nodegroup.go`):
//! one JSON file per builder in `instances/` (the name in lower case), the
//! current builder in `current`, all under `$BUILDX_CONFIG`, else
//! `$DOCKER_CONFIG/buildx`, else `~/.docker/buildx`. fbuild only reads it.
//!
//! Only the remote driver names a buildkitd that fbuild can dial: its node's
//! endpoint, and TLS files in the driver options `cacert`, `cert`, `key`,
//! `servername` (`driver/remote/factory.go`). A builder of several nodes is
//! a pool (`crate::pool`): bake and `fbuild solve` route each build to one
//! of its nodes; the other commands reach its first node. Other drivers (docker-container,
//! kubernetes, docker) run buildkitd where only buildx reaches it; their
//! error says how to give fbuild an address instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ConnectOptions, TlsOptions};

/// A builder that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuilderError {
    /// No file for the builder in the store.
    #[error("no buildx builder named {name:?} in {}", dir.display())]
    NotFound {
        /// The name asked for.
        name: String,
        /// The store's `instances` folder.
        dir: PathBuf,
    },
    /// The name cannot be a builder's (buildx's `ValidateName`).
    #[error("invalid builder name {name:?}: a name starts with a letter and holds only letters, digits and . _ -")]
    InvalidName {
        /// The name asked for.
        name: String,
    },
    /// A store file that cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
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
    /// A builder whose buildkitd only buildx can reach.
    #[error(
        "buildx builder {name:?} uses the {driver} driver, which fbuild cannot connect through; fbuild connects to \
         remote-driver builders (`docker buildx create --driver remote ADDR`) or to an address given with --addr \
         or BUILDKIT_HOST"
    )]
    UnsupportedDriver {
        /// The builder.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// A builder without nodes.
    #[error("buildx builder {name:?} has no nodes")]
    NoNodes {
        /// The builder.
        name: String,
    },
    /// A driver option the remote driver refuses too.
    #[error("buildx builder {name:?}: driver option {option}: {problem}")]
    DriverOption {
        /// The builder.
        name: String,
        /// The option (`cacert`, ...).
        option: String,
        /// What is wrong.
        problem: String,
    },
}

/// One builder file (`store.NodeGroup`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Builder {
    pub(crate) name: String,
    pub(crate) driver: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) nodes: Vec<Node>,
}

/// One node of a builder (`store.Node`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Node {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) endpoint: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) platforms: Vec<crate::registry::oci::Platform>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) driver_opts: BTreeMap<String, String>,
}

/// The `current` file.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Current {
    #[serde(default)]
    key: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    global: bool,
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

/// The store's folder, as buildx finds it.
pub(crate) fn store_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |key: &str| env(key).filter(|v| !v.is_empty());
    if let Some(dir) = set("BUILDX_CONFIG") {
        return Some(dir.into());
    }
    if let Some(dir) = set("DOCKER_CONFIG") {
        return Some(Path::new(&dir).join("buildx"));
    }
    set("HOME").map(|home| Path::new(&home).join(".docker/buildx"))
}

/// Reads builder `name` from the store at `dir`.
pub(crate) fn load(dir: &Path, name: &str) -> Result<Builder, BuilderError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(BuilderError::InvalidName { name: name.to_string() });
    }
    let instances = dir.join("instances");
    let path = instances.join(name.to_ascii_lowercase());
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuilderError::NotFound { name: name.to_string(), dir: instances })
        }
        Err(source) => return Err(BuilderError::Read { path, source }),
    };
    serde_json::from_slice(&text).map_err(|source| BuilderError::Parse { path, source })
}

/// buildx's current builder, when it applies here: one chosen with
/// `buildx use --global`, or for the Docker endpoint `docker_endpoint`
/// (buildx keys `current` by the Docker context in use). `None` when there
/// is no store or no current builder.
pub(crate) fn current(dir: &Path, docker_endpoint: &str) -> Result<Option<String>, BuilderError> {
    let path = dir.join("current");
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(BuilderError::Read { path, source }),
    };
    let current: Current = serde_json::from_slice(&text).map_err(|source| BuilderError::Parse { path, source })?;
    Ok((!current.name.is_empty() && (current.global || current.key == docker_endpoint)).then_some(current.name))
}

/// The key buildx files the current builder under for the default Docker
/// context: the Docker host (`dockerutil.GetCurrentEndpoint`). Another
/// context is keyed by its name.
pub(crate) fn docker_endpoint(env: &dyn Fn(&str) -> Option<String>) -> String {
    let set = |key: &str| env(key).filter(|v| !v.is_empty());
    match set("DOCKER_CONTEXT") {
        Some(context) if context != "default" => context,
        _ => set("DOCKER_HOST").unwrap_or_else(|| "unix:///var/run/docker.sock".into()),
    }
}

impl Builder {
    /// How to reach the builder's buildkitd: its first node's endpoint and
    /// TLS files.
    pub(crate) fn connect_options(&self) -> Result<ConnectOptions, BuilderError> {
        if self.driver != "remote" {
            return Err(BuilderError::UnsupportedDriver { name: self.name.clone(), driver: self.driver.clone() });
        }
        let node = self.nodes.first().ok_or_else(|| BuilderError::NoNodes { name: self.name.clone() })?;
        self.node_connect_options(node)
    }

    /// How to reach one node: its endpoint and the remote driver's TLS files.
    pub(crate) fn node_connect_options(&self, node: &Node) -> Result<ConnectOptions, BuilderError> {
        if self.driver != "remote" {
            return Err(BuilderError::UnsupportedDriver { name: self.name.clone(), driver: self.driver.clone() });
        }
        let mut tls = TlsOptions::default();
        for (option, value) in &node.driver_opts {
            let absolute = || -> Result<PathBuf, BuilderError> {
                if Path::new(value).is_absolute() {
                    Ok(value.into())
                } else {
                    Err(BuilderError::DriverOption {
                        name: self.name.clone(),
                        option: option.clone(),
                        problem: format!("{value:?} is not an absolute path"),
                    })
                }
            };
            match option.as_str() {
                "cacert" => tls.ca_cert = Some(absolute()?),
                "cert" => tls.cert = Some(absolute()?),
                "key" => tls.key = Some(absolute()?),
                "servername" => tls.server_name = Some(value.clone()),
                // Whether buildx loads into Docker by default: nothing to fbuild.
                "default-load" => {}
                _ => {
                    return Err(BuilderError::DriverOption {
                        name: self.name.clone(),
                        option: option.clone(),
                        problem: "not an option of the remote driver".into(),
                    })
                }
            }
        }
        Ok(ConnectOptions { addr: Some(node.endpoint.clone()), tls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buildx-store")
    }

    #[test]
    fn remote_builders_from_buildx_files() {
        let remote = load(&fixtures(), "fixture-remote").unwrap().connect_options().unwrap();
        assert_eq!(remote.addr.as_deref(), Some("tcp://127.0.0.1:1234"));
        assert!(remote.tls.ca_cert.is_none());
        // Names are looked up in lower case, as buildx files them.
        let tls = load(&fixtures(), "FIXTURE-tls").unwrap().connect_options().unwrap();
        assert_eq!(tls.addr.as_deref(), Some("tcp://buildkitd.example:1234"));
        assert_eq!(tls.tls.ca_cert.as_deref(), Some(Path::new("/certs/ca.pem")));
        assert_eq!(tls.tls.cert.as_deref(), Some(Path::new("/certs/cert.pem")));
        assert_eq!(tls.tls.key.as_deref(), Some(Path::new("/certs/key.pem")));
        assert_eq!(tls.tls.server_name.as_deref(), Some("buildkitd.example"));
    }

    #[test]
    fn other_drivers_and_names_are_refused_clearly() {
        let err = load(&fixtures(), "fixture-container").unwrap().connect_options().unwrap_err();
        assert!(err.to_string().contains("uses the docker-container driver"), "{err}");
        assert!(err.to_string().contains("--driver remote"), "{err}");
        let err = load(&fixtures(), "nope").unwrap_err();
        assert!(matches!(err, BuilderError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("buildx-store/instances"), "{err}");
        assert!(matches!(load(&fixtures(), "../current"), Err(BuilderError::InvalidName { .. })));
        assert!(matches!(load(&fixtures(), ""), Err(BuilderError::InvalidName { .. })));
    }

    #[test]
    fn relative_tls_files_are_refused() {
        let builder: Builder = serde_json::from_str(
            r#"{"Name":"b","Driver":"remote","Nodes":[{"Endpoint":"tcp://h:1","DriverOpts":{"cacert":"ca.pem"}}]}"#,
        )
        .unwrap();
        let err = builder.connect_options().unwrap_err();
        assert_eq!(err.to_string(), "buildx builder \"b\": driver option cacert: \"ca.pem\" is not an absolute path");
    }

    #[test]
    fn current_is_keyed_by_the_docker_endpoint() {
        let none = |_: &str| None;
        let endpoint = docker_endpoint(&none);
        assert_eq!(endpoint, "unix:///var/run/docker.sock");
        assert_eq!(current(&fixtures(), &endpoint).unwrap().as_deref(), Some("fixture-remote"));
        assert_eq!(current(&fixtures(), "other-context").unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(current(dir.path(), &endpoint).unwrap(), None);
        std::fs::write(dir.path().join("current"), r#"{"Key":"x","Name":"g","Global":true}"#).unwrap();
        assert_eq!(current(dir.path(), &endpoint).unwrap().as_deref(), Some("g"));
    }

    #[test]
    fn store_dir_follows_buildx() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |key: &str| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string())
        };
        assert_eq!(store_dir(&env(&[("HOME", "/h")])), Some("/h/.docker/buildx".into()));
        assert_eq!(store_dir(&env(&[("HOME", "/h"), ("DOCKER_CONFIG", "/d")])), Some("/d/buildx".into()));
        assert_eq!(
            store_dir(&env(&[("HOME", "/h"), ("DOCKER_CONFIG", "/d"), ("BUILDX_CONFIG", "/b")])),
            Some("/b".into())
        );
    }
}
