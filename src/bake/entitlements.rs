//! What a bake may do without being granted it on the command line, as
//! buildx checks it (`bake/entitlements.go` in buildx v0.38.2): a bake file
//! is code someone else may have written, so reading files outside the
//! current folder (contexts, Dockerfiles, secrets, SSH keys, local cache),
//! writing outside it (outputs, local cache exports), the host network and
//! insecure builds each need `--allow`. Every selected target is checked
//! before anything is built; what is missing is listed in buildx's words.
//!
//! Paths are compared as buildx compares them: made absolute, symlinks of
//! the part that exists resolved, a path that does not exist yet standing
//! for its nearest existing parent (an output folder to create needs write
//! access to where it will be created).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{BakeError, Target};

/// What `--allow` grants (buildx's `EntitlementConf`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Allowed {
    network_host: bool,
    security_insecure: bool,
    ssh: bool,
    devices_all: bool,
    devices: BTreeSet<String>,
    fs_read: Vec<String>,
    fs_write: Vec<String>,
}

impl Allowed {
    /// Parses `--allow` values: `network.host`, `security.insecure`, `ssh`,
    /// `device[=NAME]`, `fs.read=PATH`, `fs.write=PATH`, `fs=PATH` (`*` for
    /// any path); `image.push`/`image.load` are accepted as buildx does.
    pub(crate) fn parse(values: &[String]) -> Result<Allowed, BakeError> {
        let mut allowed = Allowed::default();
        for value in values {
            match value.as_str() {
                "network.host" => allowed.network_host = true,
                "security.insecure" => allowed.security_insecure = true,
                "ssh" => allowed.ssh = true,
                // Local output deletion is not something fbuild does.
                "buildx.local.delete" => {}
                _ => {
                    let (key, rest) = value.split_once('=').unwrap_or((value, ""));
                    match key {
                        "device" if rest.is_empty() => allowed.devices_all = true,
                        "device" => {
                            allowed.devices.insert(rest.split(',').next().unwrap_or_default().to_string());
                        }
                        "fs.read" => allowed.fs_read.push(rest.to_string()),
                        "fs.write" => allowed.fs_write.push(rest.to_string()),
                        "fs" => {
                            allowed.fs_read.push(rest.to_string());
                            allowed.fs_write.push(rest.to_string());
                        }
                        "image.push" | "image.load" | "image" => {}
                        _ => {
                            return Err(BakeError::Allow {
                                value: value.clone(),
                                reason: format!("unknown entitlement key {key:?}"),
                            })
                        }
                    }
                }
            }
        }
        Ok(allowed)
    }
}

/// What the targets need beyond what was granted.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Missing {
    /// buildx's lines (` - Read access to path /etc`), in its order.
    pub(crate) lines: Vec<String>,
    /// The `--allow=...` flags that grant them.
    pub(crate) flags: Vec<String>,
}

impl Missing {
    pub(crate) fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }
}

/// Checks `targets` against `allowed`; `cwd` is always granted for reading
/// and writing. `fs_checks` false (`BUILDX_BAKE_ENTITLEMENTS_FS=0`) leaves
/// file system access unchecked.
pub(crate) fn check(
    cwd: &Path,
    targets: &[(String, Target)],
    allowed: &Allowed,
    fs_checks: bool,
) -> Result<(), BakeError> {
    let missing = missing(cwd, targets, allowed, fs_checks);
    if missing.is_empty() {
        return Ok(());
    }
    Err(BakeError::Privileges { lines: missing.lines, flags: missing.flags.join(" ") })
}

/// Reads `BUILDX_BAKE_ENTITLEMENTS_FS` as buildx does (a Go boolean; unset is on).
pub(crate) fn fs_checks_from_env(value: Option<&str>) -> Result<bool, BakeError> {
    match value {
        None => Ok(true),
        Some(v) => crate::gostrconv::parse_bool(v).ok_or_else(|| BakeError::Allow {
            value: v.to_string(),
            reason: format!("failed to parse BUILDX_BAKE_ENTITLEMENTS_FS value {v:?}"),
        }),
    }
}

pub(crate) fn missing(cwd: &Path, targets: &[(String, Target)], allowed: &Allowed, fs_checks: bool) -> Missing {
    let (mut network_host, mut insecure, mut ssh, mut devices_all) = (false, false, false, false);
    let mut devices = BTreeSet::new();
    let mut read = Vec::new();
    let mut write = Vec::new();
    for (_, target) in targets {
        for entitlement in target.entitlements.iter().flatten() {
            match entitlement.as_str() {
                "network.host" => network_host |= !allowed.network_host,
                "security.insecure" => insecure |= !allowed.security_insecure,
                "device" => devices_all |= !allowed.devices_all,
                other => {
                    if let Some(device) = other.strip_prefix("device=") {
                        let name = device.split(',').next().unwrap_or_default();
                        if !allowed.devices_all && !allowed.devices.contains(name) {
                            devices.insert(name.to_string());
                        }
                    }
                }
            }
        }
        // `network = "host"` asks for the entitlement even when the list does not.
        if target.network.as_deref() == Some("host") {
            network_host |= !allowed.network_host;
        }
        paths(target, &mut read, &mut write, &mut ssh);
    }
    ssh &= !allowed.ssh;

    let mut missing = Missing::default();
    let mut push = |line: String, flag: String| {
        missing.lines.push(line);
        missing.flags.push(format!("--allow={flag}"));
    };
    if network_host {
        push(" - Running build containers that can access host network".into(), "network.host".into());
    }
    if insecure {
        push(" - Running privileged containers that can make system changes".into(), "security.insecure".into());
    }
    if devices_all {
        push(" - Access to CDI devices".into(), "device".into());
    }
    for device in devices {
        push(format!(" - Access to device {device}"), format!("device={device}"));
    }
    if !fs_checks {
        return missing;
    }
    if ssh {
        push(" - Forwarding default SSH agent socket".into(), "ssh".into());
    }
    let cwd_text = cwd.to_string_lossy().into_owned();
    let granted = |extra: &[String]| -> Option<Vec<PathBuf>> {
        let mut out = Vec::new();
        for path in extra.iter().chain(std::iter::once(&cwd_text)) {
            if path == "*" {
                return None;
            }
            let (existing, rest) = to_existing(cwd, Path::new(path));
            out.push(existing.join(rest));
        }
        Some(out)
    };
    let outside = |paths: &[String], granted: Option<Vec<PathBuf>>| -> Vec<PathBuf> {
        let Some(granted) = granted else { return Vec::new() };
        let existing: BTreeSet<PathBuf> = paths.iter().map(|p| to_existing(cwd, Path::new(p)).0).collect();
        let existing = dedup(existing);
        existing.into_iter().filter(|p| !granted.iter().any(|g| p.starts_with(g))).collect()
    };
    let read = outside(&read, granted(&allowed.fs_read));
    let write = outside(&write, granted(&allowed.fs_write));
    // buildx shows paths relative to the (symlink-free) current folder,
    // unless that takes more than one `..`.
    let wd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let show = |p: &PathBuf| relative(&wd, p);
    let both: Vec<&PathBuf> = read.iter().filter(|p| write.contains(p)).collect();
    for p in &both {
        push(format!(" - Read and write access to path {}", show(p)), format!("fs={}", show(p)));
    }
    for p in read.iter().filter(|p| !both.contains(p)) {
        push(format!(" - Read access to path {}", show(p)), format!("fs.read={}", show(p)));
    }
    for p in write.iter().filter(|p| !both.contains(p)) {
        push(format!(" - Write access to path {}", show(p)), format!("fs.write={}", show(p)));
    }
    missing
}

/// The local paths a target reads and writes, as buildx collects them
/// (`collectLocalPaths`, the local exporters' destinations, local cache).
fn paths(target: &Target, read: &mut Vec<String>, write: &mut Vec<String>, ssh_default: &mut bool) {
    // buildx's `isLocalPath`: not a URL (but `cwd://`), git, `target:` or `docker-image:`.
    let is_local = |p: &str| {
        let remote = p.contains("://") && !p.starts_with("cwd://");
        !(remote || p.starts_with("git@") || p.starts_with("target:") || p.starts_with("docker-image:"))
    };
    let strip = |p: &str| p.strip_prefix("cwd://").unwrap_or(p).to_string();
    let context = target.context.as_deref().unwrap_or(".");
    if is_local(context) {
        let context = strip(context);
        read.push(context.clone());
        let dockerfile = target.dockerfile.as_deref().unwrap_or("Dockerfile");
        let dockerfile = strip(dockerfile);
        if Path::new(&dockerfile).is_absolute() {
            read.push(dockerfile);
        } else {
            read.push(Path::new(&context).join(dockerfile).to_string_lossy().into_owned());
        }
    }
    for value in target.contexts.iter().flatten().map(|(_, v)| v) {
        if let Some(layout) = value.strip_prefix("oci-layout://") {
            // `oci-layout://PATH[:TAG][@DIGEST]`: the folder.
            let layout = layout.split('@').next().unwrap_or(layout);
            let layout = match layout.rsplit_once(':') {
                Some((path, tag)) if !tag.contains('/') => path,
                _ => layout,
            };
            read.push(layout.to_string());
        } else if is_local(value) {
            read.push(strip(value));
        }
    }
    for (specs, key, list) in [(&target.cache_from, "src", &mut *read), (&target.cache_to, "dest", &mut *write)] {
        for spec in specs.iter().flatten() {
            let fields = crate::output::csv_fields(spec).unwrap_or_default();
            if fields.iter().any(|f| f == "type=local") {
                let prefix = format!("{key}=");
                if let Some(path) = fields.iter().find_map(|f| f.strip_prefix(&prefix)) {
                    list.push(path.to_string());
                }
            }
        }
    }
    for spec in target.outputs.iter().flatten() {
        let fields = crate::output::csv_fields(spec).unwrap_or_default();
        let kind = fields.iter().find_map(|f| f.strip_prefix("type=")).unwrap_or("");
        if matches!(kind, "local" | "tar" | "oci" | "docker") {
            if let Some(dest) = fields.iter().find_map(|f| f.strip_prefix("dest=")).filter(|d| *d != "-") {
                write.push(dest.to_string());
            }
        }
    }
    for spec in target.secrets.iter().flatten() {
        let fields = crate::output::csv_fields(spec).unwrap_or_default();
        let is_env = fields.iter().any(|f| f == "type=env");
        let source = fields.iter().find_map(|f| f.strip_prefix("src=").or_else(|| f.strip_prefix("source=")));
        if let (false, Some(source)) = (is_env, source) {
            read.push(source.to_string());
        }
    }
    for spec in target.ssh.iter().flatten() {
        match spec.split_once('=') {
            Some((_, paths)) if !paths.is_empty() => read.extend(paths.split(',').map(String::from)),
            _ => *ssh_default = true,
        }
    }
}

/// buildx's `EvaluateToExistingPath`: `path` made absolute (against `cwd`)
/// and cleaned; its longest existing prefix with symlinks resolved, and
/// the part that does not exist.
fn to_existing(cwd: &Path, path: &Path) -> (PathBuf, PathBuf) {
    let absolute = PathBuf::from(super::compose::clean(&cwd.join(path).to_string_lossy()));
    for ancestor in absolute.ancestors() {
        if let Ok(real) = std::fs::canonicalize(ancestor) {
            let rest = absolute.strip_prefix(ancestor).map(Path::to_path_buf).unwrap_or_default();
            return (real, rest);
        }
    }
    (absolute, PathBuf::new())
}

/// Drops paths inside another path of the set.
fn dedup(paths: BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut sorted: Vec<PathBuf> = paths.into_iter().collect();
    sorted.sort_by_key(|p| p.as_os_str().len());
    let mut out: Vec<PathBuf> = Vec::new();
    for p in sorted {
        if !out.iter().any(|parent| p != *parent && p.starts_with(parent)) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `path` relative to `wd` when that needs at most one `..`, else absolute.
fn relative(wd: &Path, path: &Path) -> String {
    let wd: Vec<_> = wd.components().collect();
    let to: Vec<_> = path.components().collect();
    let common = wd.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let ups = wd.len() - common;
    if ups > 1 {
        return path.display().to_string();
    }
    let mut parts: Vec<String> = vec!["..".to_string(); ups];
    parts.extend(to[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(f: impl FnOnce(&mut Target)) -> Vec<(String, Target)> {
        let mut t = Target { context: Some(".".into()), ..Default::default() };
        f(&mut t);
        vec![("app".to_string(), t)]
    }

    #[test]
    fn outside_reads_and_writes_and_host_network_need_allow() {
        let root = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(root.path()).unwrap();
        let cwd = root.join("a/proj");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let targets = target(|t| {
            t.contexts = Some([("x".into(), "../../etc".into())].into());
            t.network = Some("host".into());
            t.outputs = Some(vec!["type=local,dest=../out".into()]);
            t.cache_to = Some(vec!["type=local,dest=cache".into()]);
        });
        let m = missing(&cwd, &targets, &Allowed::default(), true);
        let etc = root.join("etc").display().to_string();
        assert_eq!(
            m.flags,
            ["--allow=network.host".to_string(), format!("--allow=fs.read={etc}"), "--allow=fs.write=..".into()]
        );
        assert_eq!(m.lines[1], format!(" - Read access to path {etc}"));
        let allow = Allowed::parse(&["network.host".into(), format!("fs.read={etc}"), "fs.write=..".into()]).unwrap();
        assert!(missing(&cwd, &targets, &allow, true).is_empty());
        let allow = Allowed::parse(&["network.host".into(), "fs=*".into()]).unwrap();
        assert!(missing(&cwd, &targets, &allow, true).is_empty());
        // File system checks off: only the host network is asked for.
        assert_eq!(missing(&cwd, &targets, &Allowed::default(), false).flags, ["--allow=network.host"]);
    }

    #[test]
    fn inside_the_folder_needs_nothing_and_bad_keys_fail() {
        let cwd = tempfile::tempdir().unwrap();
        let targets = target(|t| {
            t.outputs = Some(vec!["type=local,dest=out".into()]);
            t.secrets = Some(vec!["id=s,src=secret.txt".into(), "id=e,env=HOME".into()]);
        });
        assert!(missing(cwd.path(), &targets, &Allowed::default(), true).is_empty());
        let err = Allowed::parse(&["bogus=1".into()]).unwrap_err().to_string();
        assert!(err.contains("unknown entitlement key \"bogus\""), "{err}");
        let both = target(|t| {
            t.context = Some("..".into());
            t.outputs = Some(vec!["type=local,dest=..".into()]);
        });
        let m = missing(cwd.path(), &both, &Allowed::default(), true);
        assert_eq!(m.flags, ["--allow=fs=.."]);
    }
}
