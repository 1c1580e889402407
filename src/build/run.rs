//! Running a [`BuildRequest`]: its sessions, the `Solve` call, the status
//! stream fed to the caller's [`ProgressSink`], cancellation, and sorting
//! what the daemon answers into a [`BuildReport`] or a [`BuildError`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::error::BuildError;
use super::folders::FolderSessions;
use super::report::{BuildReport, TransferStats};
use super::request::{BuildRequest, Frontend, LOCAL_CONTEXT};
use crate::cache::local::LocalCaches;
use crate::control::{Control, ControlError};
use crate::fsync::send::{FileSyncService, TransferProgress};
use crate::progress::{BuildEnd, BuildFailure, ProgressSink, StepTracker};
use crate::proto::moby::buildkit::v1 as control_pb;
use crate::services::{ContentService, ContentStore};
use crate::session::{RunningSession, SessionBuilder};

/// How often a live progress view is given a chance to redraw.
const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// How long the status stream may stay silent once the solve has returned
/// before we stop waiting for its end (client/solve.go waits as long).
const STATUS_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The name sessions give themselves (the daemon shows it in its logs).
const SESSION_NAME: &str = "fbuild";

/// Runs `request` on the daemon behind `channel`.
///
/// Progress goes to `progress` while the build runs; cancelling `cancel`
/// stops the build on the daemon and returns [`BuildError::Cancelled`] at
/// once. Outputs that come back to this machine (files, folders) are written
/// before this returns. Several builds may run at once on one channel.
pub async fn build(
    channel: &Channel,
    request: BuildRequest,
    progress: &mut dyn ProgressSink,
    cancel: &CancellationToken,
) -> Result<BuildReport, BuildError> {
    run(channel, request, progress, cancel, None).await
}

/// [`build`] with the folders served by sessions that `folders` keeps across
/// builds: builds running together upload a folder they share once (see
/// [`FolderSessions`]). The report's transfer figures are then the folder
/// sessions' counts while this build ran, which include uploads other builds
/// caused at the same time.
pub async fn build_sharing_folders(
    channel: &Channel,
    request: BuildRequest,
    progress: &mut dyn ProgressSink,
    cancel: &CancellationToken,
    folders: &FolderSessions,
) -> Result<BuildReport, BuildError> {
    run(channel, request, progress, cancel, Some(folders)).await
}

async fn run(
    channel: &Channel,
    request: BuildRequest,
    progress: &mut dyn ProgressSink,
    cancel: &CancellationToken,
    shared: Option<&FolderSessions>,
) -> Result<BuildReport, BuildError> {
    let control = Control::new(channel.clone());
    let build_ref = crate::session::new_id();
    let mut request = request;
    let local_caches = LocalCaches::prepare(&mut request, &mut |warning| progress.on_warning(&warning))
        .map_err(BuildError::LocalCache)?;
    let mut sessions = Sessions::start(&control, &request, local_caches.stores(), shared).await?;

    let solve_request = solve_request(&request, &build_ref, sessions.main.id(), &sessions.per_local);
    tracing::debug!(build_ref, session = sessions.main.id(), "solving");
    let status = control.status(&build_ref).await.map_err(BuildError::from_call)?;
    let frontend = match &request.frontend {
        Frontend::Client(frontend) => Some(frontend.as_ref()),
        _ => None,
    };
    let solve = solve_with(&control, solve_request, frontend, &request.cache_imports, &build_ref, sessions.main.id());

    let mut tracker = StepTracker::default();
    let outcome = follow(solve, status, &mut tracker, progress, cancel).await;
    // Once Solve has returned the daemon has everything it asked for, and
    // every output has landed: the sessions have nothing left to do.
    sessions.close().await;
    let result = match outcome {
        Some(result) => result,
        None => {
            progress.on_end(BuildEnd::Cancelled);
            return Err(BuildError::Cancelled);
        }
    };
    match result {
        Ok(response) => {
            // index.json changes only after the daemon has written every blob.
            let finished =
                local_caches.finish(&response.exporter_response, &mut |warning| progress.on_warning(&warning));
            if let Err(error) = finished {
                let failure = BuildFailure::new(crate::error::error_chain(&error));
                progress.on_end(BuildEnd::Failed(&failure));
                return Err(BuildError::LocalCache(error));
            }
            progress.on_end(BuildEnd::Succeeded);
            Ok(BuildReport {
                build_ref,
                exporter_response: response.exporter_response,
                transfer: sessions.transfer(),
                summary: tracker.summary(false),
                vertices: tracker.outcomes(),
            })
        }
        Err(error) => {
            // A client-side frontend's failure (a Dockerfile error) is the
            // build's, even when no step ran.
            let started_or_client = tracker.any_started() || matches!(request.frontend, Frontend::Client(_));
            let mut error = BuildError::from_solve(error, tracker.any_failed(), started_or_client);
            let failure = match &mut error {
                BuildError::Failed(failed) => {
                    // The daemon sees only that our end of an output stream
                    // broke (`EOF`); why it broke is ours to tell.
                    if let Some(output) = sessions.outputs.failure() {
                        failed.failure.message = output.to_string();
                    }
                    if let Some((step, log)) = tracker.failed_step(failed.failure.vertex.as_deref()) {
                        failed.step = Some(step);
                        failed.log = log;
                    }
                    failed.failure.clone()
                }
                other => BuildFailure::new(crate::error::error_chain(other)),
            };
            progress.on_end(BuildEnd::Failed(&failure));
            Err(error)
        }
    }
}

/// The `Solve` call, and for a client-side frontend the frontend running
/// beside it on the same connection. A frontend's own failure is handed to
/// the daemon (`Return`), which then fails the solve with its message; if
/// the solve does not end within [`FRONTEND_ABANDON_TIMEOUT`] after the
/// frontend gave up (it never reached the daemon), its error is the solve's.
async fn solve_with(
    control: &Control,
    request: control_pb::SolveRequest,
    frontend: Option<&dyn crate::gateway::ClientFrontend>,
    cache_imports: &[crate::cache::CacheEntry],
    build_ref: &str,
    session_id: &str,
) -> Result<control_pb::SolveResponse, ControlError> {
    let solve = control.solve(request);
    let Some(frontend) = frontend else { return solve.await };
    let mut solve = std::pin::pin!(solve);
    let run =
        crate::gateway::run_client_frontend_importing(control, build_ref, session_id, cache_imports.to_vec(), frontend);
    tokio::select! {
        result = &mut solve => result,
        outcome = run => match outcome {
            Ok(()) => solve.await,
            Err(error) => match tokio::time::timeout(FRONTEND_ABANDON_TIMEOUT, &mut solve).await {
                Ok(result) => result,
                Err(_) => {
                    let message = crate::error::error_chain(&error);
                    Err(ControlError::new("Solve", tonic::Status::aborted(message)))
                }
            },
        },
    }
}

/// How long the solve may outlive a client-side frontend that failed
/// (client/build.go waits as long).
const FRONTEND_ABANDON_TIMEOUT: Duration = Duration::from_secs(5);

/// Feeds the status stream to `progress` (and `tracker`) while `solve`
/// runs, then until the stream ends or stays silent for
/// [`STATUS_DRAIN_TIMEOUT`]. `None` when `cancel` fired first; the solve
/// future is dropped then, which cancels the call on the daemon.
async fn follow<F, S>(
    solve: F,
    status: S,
    tracker: &mut StepTracker,
    progress: &mut dyn ProgressSink,
    cancel: &CancellationToken,
) -> Option<Result<control_pb::SolveResponse, ControlError>>
where
    F: std::future::Future<Output = Result<control_pb::SolveResponse, ControlError>>,
    S: Stream<Item = Result<control_pb::StatusResponse, tonic::Status>>,
{
    let mut solve = std::pin::pin!(solve);
    let mut status = std::pin::pin!(status);
    let mut ticker = tokio::time::interval(TICK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut open = true;
    let result = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return None,
            result = &mut solve => break result,
            item = status.next(), if open => on_item(item, &mut open, tracker, progress),
            _ = ticker.tick() => progress.on_tick(),
        }
    };
    // The daemon sends the last vertexes (exporters, cache export) just
    // before the stream ends: wait for them, but not for a silent stream.
    while open {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return None,
            item = tokio::time::timeout(STATUS_DRAIN_TIMEOUT, status.next()) => match item {
                Ok(item) => on_item(item, &mut open, tracker, progress),
                Err(_silent) => break,
            },
        }
    }
    Some(result)
}

/// One item of the status stream: shown and counted, or the stream's end.
fn on_item(
    item: Option<Result<control_pb::StatusResponse, tonic::Status>>,
    open: &mut bool,
    tracker: &mut StepTracker,
    progress: &mut dyn ProgressSink,
) {
    match item {
        Some(Ok(message)) => {
            tracker.apply(&message);
            progress.on_status(&message);
        }
        // The stream's own failure is not the build's: the solve's result
        // says how the build went.
        Some(Err(error)) => {
            tracing::debug!(%error, "the status stream failed");
            *open = false;
        }
        None => *open = false,
    }
}

/// The sessions of one build: the main one (outputs, credentials, secrets,
/// SSH, and every folder for frontends that know only one session), and one
/// per local folder, whose shared key is derived from that folder alone.
struct Sessions {
    main: RunningSession,
    /// Session id per local name, for the `local-sessionid:NAME` attributes.
    per_local: BTreeMap<String, String>,
    folders: Vec<RunningSession>,
    /// Transfer counters and their values when the build started (shared
    /// folder sessions count for other builds too).
    transfers: Vec<(Arc<TransferProgress>, u64, u64)>,
    outputs: crate::output::PendingOutputs,
}

impl Sessions {
    async fn start(
        control: &Control,
        request: &BuildRequest,
        content_stores: &BTreeMap<String, ContentStore>,
        shared: Option<&FolderSessions>,
    ) -> Result<Sessions, BuildError> {
        let counted = |progress: Arc<TransferProgress>| {
            let (files, bytes) = (progress.files(), progress.bytes());
            (progress, files, bytes)
        };
        let dirs = |names: &[&String]| -> BTreeMap<String, PathBuf> {
            names.iter().map(|name| ((*name).clone(), request.locals[*name].clone())).collect()
        };
        let mut transfers = Vec::new();
        let mut per_local = BTreeMap::new();
        let mut folders = Vec::new();
        // Only a daemon frontend can be told which session holds which
        // folder; a definition's local sources name no session, so the
        // daemon asks the main one.
        if matches!(request.frontend, Frontend::Daemon { .. }) {
            let mut by_folder: BTreeMap<PathBuf, Vec<&String>> = BTreeMap::new();
            for (name, path) in &request.locals {
                by_folder.entry(absolute(path)).or_default().push(name);
            }
            for (folder, names) in by_folder {
                if let Some(shared) = shared {
                    let (id, progress) = shared.session_for(control, &folder, SESSION_NAME).await?;
                    transfers.push(counted(progress));
                    for name in names {
                        per_local.insert(name.clone(), id.clone());
                    }
                    continue;
                }
                let mut session = SessionBuilder::new(SESSION_NAME, crate::session::shared_key_for(&folder));
                let file_sync = FileSyncService::new(dirs(&names));
                transfers.push(counted(file_sync.progress()));
                session.add_service(file_sync.into_server()).map_err(BuildError::Session)?;
                let session = session.start(control).await.map_err(BuildError::Session)?;
                for name in names {
                    per_local.insert(name.clone(), session.id().to_string());
                }
                folders.push(session);
            }
        }

        // The main session's key follows the context folder, so a frontend
        // that reads folders through it still finds its earlier upload.
        let main_key_folder = request
            .locals
            .get(LOCAL_CONTEXT)
            .or_else(|| request.locals.values().next())
            .map(|path| absolute(path))
            .unwrap_or_default();
        let mut main = SessionBuilder::new(SESSION_NAME, crate::session::shared_key_for(&main_key_folder));
        if !request.locals.is_empty() {
            let names: Vec<&String> = request.locals.keys().collect();
            let file_sync = FileSyncService::new(dirs(&names));
            transfers.push(counted(file_sync.progress()));
            main.add_service(file_sync.into_server()).map_err(BuildError::Session)?;
        }
        let outputs =
            crate::services::register(&mut main, &request.exports, &request.secrets, &request.ssh, &request.uploads)
                .map_err(|error| match error {
                    crate::services::ServicesError::Session(error) => BuildError::Session(error),
                    crate::services::ServicesError::Ssh(error) => {
                        BuildError::Service { what: "SSH agents", source: Box::new(error) }
                    }
                })?;
        if !content_stores.is_empty() {
            let content = ContentService::new(content_stores.clone()).into_server();
            main.add_service(content).map_err(BuildError::Session)?;
        }
        let main = main.start(control).await.map_err(BuildError::Session)?;
        Ok(Sessions { main, per_local, folders, transfers, outputs })
    }

    fn transfer(&self) -> TransferStats {
        self.transfers.iter().fold(TransferStats::default(), |sum, (t, files, bytes)| TransferStats {
            files: sum.files + t.files().saturating_sub(*files),
            bytes: sum.bytes + t.bytes().saturating_sub(*bytes),
        })
    }

    async fn close(&mut self) {
        for session in self.folders.drain(..) {
            if let Err(error) = session.close().await {
                tracing::warn!("a folder's session ended badly: {}", crate::error::error_chain(&error));
            }
        }
        if let Err(error) = self.main.stop().await {
            tracing::warn!("the build's session ended badly: {}", crate::error::error_chain(&error));
        }
        // A cancelled build's folder receivers see their stream end now and
        // remove their staging folders; the build is over only then.
        self.outputs.wait().await;
    }
}

/// The folder's absolute path (symbolic links resolved), so one folder
/// named two ways is one folder.
fn absolute(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

fn solve_request(
    request: &BuildRequest,
    build_ref: &str,
    main_session: &str,
    per_local: &BTreeMap<String, String>,
) -> control_pb::SolveRequest {
    let entry =
        |c: &crate::cache::CacheEntry| control_pb::CacheOptionsEntry { r#type: c.kind.clone(), attrs: c.attrs.clone() };
    let daemon_attrs = |mut attrs: BTreeMap<String, String>| {
        if !request.cache_imports.is_empty() {
            attrs.insert("cache-imports".into(), crate::cache::imports_option(&request.cache_imports));
        }
        // Which session serves which folder (frontend/dockerui reads these).
        for (name, session) in per_local {
            attrs.insert(format!("local-sessionid:{name}"), session.clone());
        }
        attrs
    };
    let (frontend, frontend_attrs, definition) = match &request.frontend {
        Frontend::Daemon { name, attrs } => (name.clone(), daemon_attrs(attrs.clone()), None),
        Frontend::Definition(definition) => {
            let mut definition = definition.clone();
            crate::llb::drop_empty_map_values(&mut definition);
            (String::new(), BTreeMap::new(), Some(definition))
        }
        // No frontend and no definition: the daemon waits for the gateway,
        // and passes these on to what the client frontend runs through it.
        Frontend::Client(client) => {
            let attrs = client.solve_attrs();
            (String::new(), if attrs.is_empty() { attrs } else { daemon_attrs(attrs) }, None)
        }
    };
    control_pb::SolveRequest {
        r#ref: build_ref.to_string(),
        session: main_session.to_string(),
        definition,
        frontend,
        frontend_attrs,
        entitlements: request.entitlements.clone(),
        cache: Some(control_pb::CacheOptions {
            exports: request.cache_exports.iter().map(entry).collect(),
            imports: request.cache_imports.iter().map(entry).collect(),
            ..Default::default()
        }),
        // The same list, in the same order, feeds FileSend: the daemon names
        // each output it sends back by its index here.
        exporters: crate::output::solve_exporters(&request.exports),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
