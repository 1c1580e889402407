//! `mounts=` of `--cache-from/--cache-to type=local`: which cache mounts a
//! build carries in its cache folders, restored before the build and saved
//! after it (the library's `cache::mounts`).
//!
//! `mounts=true` carries every cache mount the Dockerfile's `RUN --mount`
//! flags declare; `mounts=ID,ID` (quoted in the CSV: `"mounts=pip,apt"`)
//! only those; `mounts=false` none. On `--cache-from`, restoring is the
//! default whenever the folder carries mounts.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::build::BuildRequest;
use crate::cache::mount_scan;
use crate::cache::mounts::{self, CacheMount, DEFAULT_HELPER_IMAGE};
use crate::cli::solve::plan::Env;
use crate::printer::Printer;
use crate::progress::{ProgressMode, ProgressWriter};
use crate::units::human_size;

/// The environment variable naming the helper image.
const HELPER_IMAGE_ENV: &str = "FBUILD_CACHE_HELPER_IMAGE";

/// What to restore before the build and save after it.
#[derive(Debug, Default)]
pub struct MountCarry {
    restores: Vec<Job>,
    saves: Vec<Job>,
}

#[derive(Debug)]
struct Job {
    dir: PathBuf,
    tag: String,
    /// The Dockerfile's mounts to save, or to restore when the folder
    /// carries them.
    mounts: Vec<CacheMount>,
    helper_image: String,
    /// `ignore-error=true` on the export: a failed save is a warning.
    ignore_error: bool,
    /// Ids of declared mounts the prediction left out of a restore: the
    /// folder carries them, but they are not "undeclared".
    left_out: Vec<String>,
}

impl Job {
    /// The ids the folder carries that the Dockerfile does not declare,
    /// out of those the restore passed over (`ignored`).
    fn undeclared(&self, ignored: &[String]) -> Vec<String> {
        ignored.iter().filter(|id| !self.left_out.contains(id)).cloned().collect()
    }
}

/// What `mounts=` asks for.
enum Selection {
    None,
    All,
    Ids(Vec<String>),
}

/// Any value is a selection: what is not `true`/`false` is a list of ids,
/// which [`pick`] checks against the Dockerfile.
fn selection(value: Option<&String>, default: Selection) -> Selection {
    match value.map(String::as_str) {
        None => default,
        Some("true" | "1") => Selection::All,
        Some("false" | "0") => Selection::None,
        Some(ids) => Selection::Ids(ids.split(',').map(|id| id.trim().to_string()).collect()),
    }
}

/// The mounts of `declared` that `wanted` selects, by id or target; an id
/// the Dockerfile does not declare is refused, naming `flag`.
fn pick(declared: &[CacheMount], wanted: Selection, flag: &str) -> anyhow::Result<Vec<CacheMount>> {
    match wanted {
        Selection::None => Ok(Vec::new()),
        Selection::All => Ok(declared.to_vec()),
        Selection::Ids(ids) => ids
            .iter()
            .map(|id| {
                declared.iter().find(|m| m.id == *id || m.target == *id).cloned().ok_or_else(|| {
                    let known: Vec<&str> = declared.iter().map(|m| m.id.as_str()).collect();
                    anyhow::anyhow!(
                        "invalid {flag} mounts={id:?}: the Dockerfile has no RUN --mount=type=cache with that id or target (it has: {})",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    )
                })
            })
            .collect(),
    }
}

impl MountCarry {
    /// Reads `mounts=` from the request's local cache entries; the
    /// Dockerfile's text says which cache mounts exist. Unknown ids fail
    /// here, before anything is built.
    pub fn plan(request: &BuildRequest, dockerfile: &str, env: &dyn Env) -> anyhow::Result<(MountCarry, Vec<String>)> {
        let mut carry = MountCarry::default();
        let mut notes = Vec::new();
        let helper = |attrs: &std::collections::BTreeMap<String, String>| {
            attrs
                .get("helper-image")
                .cloned()
                .or_else(|| env.var(HELPER_IMAGE_ENV).filter(|v| !v.is_empty()))
                .unwrap_or_else(|| DEFAULT_HELPER_IMAGE.to_string())
        };
        let tag = |attrs: &std::collections::BTreeMap<String, String>| {
            attrs.get("tag").cloned().unwrap_or_else(|| "latest".into())
        };
        // The Dockerfile's cache mounts: the only ones a folder may fill or
        // be given (a folder's own list is untrusted).
        let mut scanned: Option<Vec<CacheMount>> = None;
        let mut declared = || -> Vec<CacheMount> {
            scanned
                .get_or_insert_with(|| {
                    let (mounts, skipped) = mount_scan::cache_mounts(dockerfile);
                    notes.extend(skipped);
                    mounts
                })
                .clone()
        };
        for entry in request.cache_imports.iter().filter(|e| e.kind == "local") {
            let wanted = selection(entry.attrs.get("mounts"), Selection::All);
            if matches!(wanted, Selection::None) {
                continue;
            }
            let mounts = pick(&declared(), wanted, "--cache-from")?;
            if mounts.is_empty() {
                continue;
            }
            carry.restores.push(Job {
                dir: PathBuf::from(entry.local_dir().unwrap_or_default()),
                tag: tag(&entry.attrs),
                mounts,
                helper_image: helper(&entry.attrs),
                ignore_error: false,
                left_out: Vec::new(),
            });
        }
        for entry in request.cache_exports.iter().filter(|e| e.kind == "local") {
            let wanted = selection(entry.attrs.get("mounts"), Selection::None);
            if matches!(wanted, Selection::None) {
                continue;
            }
            let mounts = pick(&declared(), wanted, "--cache-to")?;
            carry.saves.push(Job {
                dir: PathBuf::from(entry.local_dir().unwrap_or_default()),
                tag: tag(&entry.attrs),
                mounts,
                helper_image: helper(&entry.attrs),
                ignore_error: entry
                    .attrs
                    .get("ignore-error")
                    .is_some_and(|v| crate::gostrconv::parse_bool(v) == Some(true)),
                left_out: Vec::new(),
            });
        }
        Ok((carry, notes))
    }

    /// Whether any cache mount would be restored.
    /// Whether it restores or saves any cache mount.
    pub fn any(&self) -> bool {
        self.restores_any() || self.saves.iter().any(|job| !job.mounts.is_empty())
    }

    pub fn restores_any(&self) -> bool {
        self.restores.iter().any(|job| !job.mounts.is_empty())
    }

    /// Keeps only the restores of the mounts `wanted` names (by the id the
    /// daemon files them under); returns the ids of those left out.
    pub fn restore_only(&mut self, wanted: &std::collections::BTreeSet<String>) -> Vec<String> {
        let mut skipped = Vec::new();
        for job in &mut self.restores {
            let left_out = &mut job.left_out;
            job.mounts.retain(|mount| {
                let keep = wanted.contains(&mount.daemon_id());
                if !keep {
                    skipped.push(mount.id.clone());
                    left_out.push(mount.id.clone());
                }
                keep
            });
        }
        self.restores.retain(|job| !job.mounts.is_empty());
        skipped
    }

    /// Fills the daemon's empty cache mounts from the folders, before the
    /// build.
    pub async fn restore(
        &self,
        channel: &Channel,
        mode: ProgressMode,
        printer: Printer,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        for job in &self.restores {
            let mut progress = ProgressWriter::new(mode, std::io::BufWriter::new(std::io::stderr()));
            let restored =
                mounts::restore(channel, &job.dir, &job.tag, &job.mounts, &job.helper_image, &mut progress, cancel)
                    .await
                    .map_err(helper_hint)
                    .with_context(|| format!("cannot restore the cache mounts carried in {}", job.dir.display()))?;
            if super::shows_notes(mode, printer) && !(restored.filled.is_empty() && restored.kept.is_empty()) {
                let mut err = printer.stderr();
                let _ = write!(err, "cache mounts from {}: ", job.dir.display());
                let _ = match (restored.filled.is_empty(), restored.kept.is_empty()) {
                    (false, true) => writeln!(err, "restored {}", restored.filled.join(", ")),
                    (true, false) => writeln!(err, "kept the daemon's own {}", restored.kept.join(", ")),
                    _ => writeln!(
                        err,
                        "restored {}; kept the daemon's own {}",
                        restored.filled.join(", "),
                        restored.kept.join(", ")
                    ),
                };
            }
            let undeclared = job.undeclared(&restored.ignored);
            if !undeclared.is_empty() {
                // A warning, as JSON under rawjson (the stream stays JSON lines).
                let ignored: Vec<String> = undeclared.iter().map(|id| format!("{id:?}")).collect();
                progress.warn(&format!(
                    "cache mounts from {}: ignored {} (not declared by the Dockerfile)",
                    job.dir.display(),
                    ignored.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Saves the cache mounts into the folders, after a successful build.
    pub async fn save(
        &self,
        channel: &Channel,
        mode: ProgressMode,
        printer: Printer,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        for job in &self.saves {
            if job.mounts.is_empty() {
                continue;
            }
            let mut progress = ProgressWriter::new(mode, std::io::BufWriter::new(std::io::stderr()));
            let saved =
                mounts::save(channel, &job.mounts, &job.dir, &job.tag, &job.helper_image, &mut progress, cancel)
                    .await
                    .map_err(helper_hint)
                    .with_context(|| format!("cannot save the cache mounts into {}", job.dir.display()));
            let saved = match saved {
                Ok(saved) => saved,
                Err(error) if job.ignore_error => {
                    progress.warn(&format!("{error:#} (ignored: ignore-error=true)"));
                    continue;
                }
                Err(error) => return Err(error),
            };
            if super::shows_notes(mode, printer) {
                let bytes: u64 = saved.mounts.iter().map(|m| m.size).sum();
                let ids: Vec<&str> = saved.mounts.iter().map(|m| m.mount.id.as_str()).collect();
                let mut err = printer.stderr();
                let _ = write!(err, "cache mounts saved to {}: ", job.dir.display());
                let _ = if ids.is_empty() {
                    writeln!(err, "none had contents")
                } else {
                    writeln!(err, "{} ({})", ids.join(", "), human_size(bytes as i64))
                };
            }
        }
        Ok(())
    }
}

/// A failed helper build names the image it ran in; when the failure is
/// the image's (its name is in the cause), the hint says how to pick
/// another (the default is Docker Hub's busybox, which a daemon without
/// internet cannot pull). A full disk or a failed step is not the image's
/// fault, and gets no such hint.
fn helper_hint(error: mounts::MountsError) -> anyhow::Error {
    let hints = match &error {
        mounts::MountsError::Build { image, source }
            if crate::error::error_chain(source.as_ref()).contains(image.as_str())
                && !crate::error::error_chain(source.as_ref()).contains("No space left on device") =>
        {
            vec![format!(
                "cache mounts are copied in the helper image {image}; name one the daemon can pull with \
             helper-image=IMAGE in --cache-to/--cache-from, or {HELPER_IMAGE_ENV}=IMAGE"
            )]
        }
        _ => Vec::new(),
    };
    crate::error::Hinted::wrap(error, hints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheDirection, CacheEntry};

    struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    const DOCKERFILE: &str = "FROM base\n\
        RUN --mount=type=cache,id=pip,target=/root/.cache/pip pip install x\n\
        RUN --mount=type=cache,target=/var/cache/apt apt-get update\n";

    fn request(cache_from: &[&str], cache_to: &[&str]) -> BuildRequest {
        let mut request = BuildRequest::dockerfile(".");
        request.cache_imports =
            cache_from.iter().map(|s| CacheEntry::parse(s, CacheDirection::Import).unwrap()).collect();
        request.cache_exports =
            cache_to.iter().map(|s| CacheEntry::parse(s, CacheDirection::Export).unwrap()).collect();
        request
    }

    #[test]
    fn mounts_select_what_travels() {
        let (carry, _) =
            MountCarry::plan(&request(&[], &["type=local,dest=c,mounts=true"]), DOCKERFILE, &NoEnv).unwrap();
        let ids: Vec<&str> = carry.saves[0].mounts.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["pip", "/var/cache/apt"]);
        assert_eq!(carry.saves[0].helper_image, DEFAULT_HELPER_IMAGE);

        let by_id = request(&[], &["type=local,dest=c,\"mounts=/var/cache/apt\",helper-image=me/busybox"]);
        let (carry, _) = MountCarry::plan(&by_id, DOCKERFILE, &NoEnv).unwrap();
        assert_eq!(carry.saves[0].mounts.len(), 1);
        assert_eq!(carry.saves[0].helper_image, "me/busybox");

        // Without mounts= nothing is saved; restoring is the default.
        let (carry, _) =
            MountCarry::plan(&request(&["type=local,src=c"], &["type=local,dest=c"]), DOCKERFILE, &NoEnv).unwrap();
        assert!(carry.saves.is_empty());
        assert_eq!(carry.restores.len(), 1);
        let (carry, _) =
            MountCarry::plan(&request(&["type=local,src=c,mounts=false"], &[]), DOCKERFILE, &NoEnv).unwrap();
        assert!(carry.restores.is_empty());
    }

    #[test]
    fn only_the_mounts_of_steps_that_run_are_restored() {
        let (mut carry, _) = MountCarry::plan(&request(&["type=local,src=c"], &[]), DOCKERFILE, &NoEnv).unwrap();
        assert!(carry.restores_any());
        let skipped = carry.restore_only(&["/pip".to_string()].into());
        assert_eq!(skipped, ["/var/cache/apt"]);
        assert_eq!(carry.restores[0].mounts.len(), 1);
        // The folder carries the mount left out: passed over, not "undeclared".
        let ignored = ["/var/cache/apt".to_string(), "conda".to_string()];
        assert_eq!(carry.restores[0].undeclared(&ignored), ["conda"]);
        assert_eq!(carry.restore_only(&Default::default()), ["pip"]);
        assert!(!carry.restores_any());
    }

    #[test]
    fn an_unknown_mount_id_is_refused_before_the_build() {
        let error =
            MountCarry::plan(&request(&[], &["type=local,dest=c,mounts=conda"]), DOCKERFILE, &NoEnv).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("mounts=\"conda\""), "{message}");
        assert!(message.contains("(it has: pip, /var/cache/apt)"), "{message}");
    }

    /// Issue 20, defect 7: a helper build that failed on a full disk was
    /// blamed on the helper image (the daemon's message names the image's
    /// layers); only a failure that is the image's gets the hint.
    #[test]
    fn a_full_disk_is_not_blamed_on_the_helper_image() {
        use crate::build::{BuildError, FailedBuild};
        use crate::progress::BuildFailure;
        let image = "registry.example/busybox:latest".to_string();
        let failed = |message: String| mounts::MountsError::Build {
            image: image.clone(),
            source: Box::new(BuildError::Failed(Box::new(FailedBuild {
                failure: BuildFailure::new(message),
                step: None,
                log: Vec::new(),
            }))),
        };
        let hints = |error: anyhow::Error| match error.downcast_ref::<crate::error::Hinted>() {
            Some(hinted) => hinted.hints.clone(),
            None => Vec::new(),
        };
        let full = failed(format!("failed to copy files of {image}: write /tar/0.tar: No space left on device"));
        assert_eq!(hints(helper_hint(full)), Vec::<String>::new());
        let pull = failed(format!("failed to resolve source metadata for {image}: not found"));
        let hint = hints(helper_hint(pull));
        assert_eq!(hint.len(), 1, "{hint:?}");
        assert!(hint[0].contains("helper-image=IMAGE"), "{hint:?}");
    }
}
