//! Running one build: the plan's session, its solve request, its progress,
//! and what the daemon answers.
//!
//! ```text
//! SolvePlan ──> session (FileSync, FileSend, Auth, Secrets, SSH) ──┐
//!          ──> Control.Solve(SolveRequest) ─────────────────────────┤ concurrently
//!          ──> Control.Status(ref) ──> progress renderer ──────────┘
//! ```
//! Ctrl-C drops the solve call, which cancels it on the daemon, closes the
//! session, and ends with [`crate::error::Cancelled`] (exit code 130).

pub mod metadata;
pub mod plan;

use std::collections::BTreeMap;
use std::path::Path;

use std::io::Write as _;

use anyhow::Context as _;
use tonic::transport::Channel;

use crate::control::Control;
use crate::printer::Printer;
use crate::proto::moby::buildkit::v1 as control_pb;
use crate::session::SessionBuilder;
use plan::SolvePlan;

/// What a finished build reports.
#[derive(Debug)]
pub struct SolveOutcome {
    pub exporter_response: BTreeMap<String, String>,
}

/// The failure of the build itself, as the daemon tells it.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    #[error("the build failed: {}", .0.status().message())]
    Build(crate::control::ControlError),
}

/// Runs `plan` against the daemon behind `channel`.
pub async fn execute(plan: SolvePlan, channel: Channel, printer: Printer) -> anyhow::Result<SolveOutcome> {
    let control = Control::new(channel);
    let build_ref = crate::session::new_id();

    let local_paths: Vec<&Path> = plan.locals.values().map(|p| p.as_path()).collect();
    let mut session = SessionBuilder::new("fbuild", crate::session::shared_key_for(&local_paths));
    let dirs = plan
        .locals
        .iter()
        .map(|(name, path)| (name.clone(), crate::fsync::send::LocalDir { path: path.clone(), shared_key: None }))
        .collect();
    let file_sync = crate::fsync::send::FileSyncService::new(dirs);
    let transfer = file_sync.progress();
    session.add_service(file_sync.into_server())?;
    crate::services::register(&mut session, &plan.exports, &plan.secrets, &plan.ssh)?;
    let session = session.start(&control).await.context("cannot open a session with the daemon")?;

    let request = solve_request(&plan, &build_ref, session.id());
    tracing::debug!(build_ref, session = session.id(), "solving");

    let status_stream = control.status(&build_ref).await.context("cannot follow the build's progress")?;
    let progress = crate::progress::spawn(plan.progress, status_stream, printer, plan.dockerfile_context());

    let solve = control.solve(request);
    tokio::pin!(solve);
    let result = tokio::select! {
        result = &mut solve => result,
        _ = interrupted() => {
            // Dropping the call cancels it on the daemon; the session goes with it.
            drop(session);
            let _ = progress.abort_and_report_cancelled().await;
            return Err(crate::error::Cancelled.into());
        }
    };
    let close = session.close().await;
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            progress.finish(Some(error.status())).await;
            return Err(SolveError::Build(error).into());
        }
    };
    progress.finish(None).await;
    close.context("the session did not close cleanly")?;
    // The daemon keeps earlier uploads: say how much this build really sent.
    let files = transfer.files();
    if plan.progress != crate::progress::ProgressMode::Quiet {
        let _ = writeln!(
            printer.stderr(),
            "context: {files} file{} sent, {} transferred",
            if files == 1 { "" } else { "s" },
            crate::units::human_size(transfer.bytes() as i64)
        );
    }

    if let Some(path) = &plan.metadata_file {
        metadata::write(path, &response.exporter_response)?;
    }
    crate::output::after_solve(&plan.exports, &response.exporter_response, printer)?;
    Ok(SolveOutcome { exporter_response: response.exporter_response })
}

/// Ctrl-C, or a SIGTERM from a CI runner cancelling the job.
async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

fn solve_request(plan: &SolvePlan, build_ref: &str, session_id: &str) -> control_pb::SolveRequest {
    let mut frontend_attrs = plan.frontend_attrs.clone();
    let entry = |c: &plan::CacheEntry| control_pb::CacheOptionsEntry { r#type: c.kind.clone(), attrs: c.attrs.clone() };
    let imports: Vec<_> = plan.cache_imports.iter().map(entry).collect();
    if !imports.is_empty() {
        // The Dockerfile frontend reads its cache imports from this attribute
        // (as client/solve.go sends it: JSON with Go's field names).
        let json: Vec<serde_json::Value> =
            plan.cache_imports.iter().map(|c| serde_json::json!({"Type": c.kind, "Attrs": c.attrs})).collect();
        frontend_attrs.insert("cache-imports".into(), serde_json::Value::Array(json).to_string());
    }
    // The same list, in the same order, feeds FileSend: the daemon names
    // each output it sends back by its index here.
    let exporters = crate::output::solve_exporters(&plan.exports);
    control_pb::SolveRequest {
        r#ref: build_ref.to_string(),
        session: session_id.to_string(),
        frontend: plan.frontend.clone(),
        frontend_attrs,
        entitlements: plan.entitlements.clone(),
        cache: Some(control_pb::CacheOptions {
            exports: plan.cache_exports.iter().map(entry).collect(),
            imports,
            ..Default::default()
        }),
        exporters,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: crate::cli::solve::Args,
    }

    #[test]
    fn request_carries_cache_imports_for_the_frontend() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let argv = [
            "solve",
            dir.path().to_str().unwrap(),
            "--cache-from",
            "r/app:cache",
            "--cache-to",
            "type=inline",
            "--progress",
            "plain",
        ];
        let args = Wrapper::try_parse_from(argv).unwrap().args;
        let plan = SolvePlan::from_args(&args, &BTreeMap::new()).unwrap();
        let request = solve_request(&plan, "ref1", "session1");
        assert_eq!(request.r#ref, "ref1");
        assert_eq!(request.session, "session1");
        assert_eq!(request.frontend, "dockerfile.v0");
        let cache = request.cache.unwrap();
        assert_eq!(cache.imports.len(), 1);
        assert_eq!(cache.imports[0].r#type, "registry");
        assert_eq!(cache.exports[0].r#type, "inline");
        assert_eq!(request.frontend_attrs["cache-imports"], r#"[{"Attrs":{"ref":"r/app:cache"},"Type":"registry"}]"#);
    }
}
