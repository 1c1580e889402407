use std::collections::BTreeMap;

use super::*;
use crate::cache::CacheEntry;
use crate::proto::moby::buildkit::v1::{StatusResponse, Vertex};

fn vertex(digest: &str, name: &str, cached: bool) -> StatusResponse {
    let ts = Some(prost_types::Timestamp { seconds: 1, nanos: 0 });
    StatusResponse {
        vertexes: vec![Vertex {
            digest: digest.into(),
            name: name.into(),
            started: ts,
            completed: ts,
            cached,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Records what a build told its sink.
#[derive(Default)]
struct Recorder {
    statuses: usize,
    ended: Vec<String>,
}

impl ProgressSink for Recorder {
    fn on_status(&mut self, _: &StatusResponse) {
        self.statuses += 1;
    }
    fn on_end(&mut self, end: BuildEnd<'_>) {
        self.ended.push(format!("{end:?}"));
    }
}

#[test]
fn a_daemon_frontend_learns_its_cache_imports_and_folder_sessions() {
    let mut request = BuildRequest::dockerfile("/src/app");
    request.cache_imports.push(CacheEntry::registry("r/app:cache"));
    request.cache_exports.push(CacheEntry { kind: "inline".into(), attrs: BTreeMap::new() });
    let per_local: BTreeMap<String, String> =
        [("context".to_string(), "s1".to_string()), ("dockerfile".to_string(), "s1".to_string())].into();
    let solve = solve_request(&request, "ref1", "main1", &per_local);
    assert_eq!((solve.r#ref.as_str(), solve.session.as_str()), ("ref1", "main1"));
    assert_eq!(solve.frontend, "dockerfile.v0");
    assert_eq!(solve.frontend_attrs["local-sessionid:context"], "s1");
    assert_eq!(solve.frontend_attrs["local-sessionid:dockerfile"], "s1");
    assert_eq!(solve.frontend_attrs["cache-imports"], r#"[{"Attrs":{"ref":"r/app:cache"},"Type":"registry"}]"#);
    let cache = solve.cache.unwrap();
    assert_eq!((cache.imports[0].r#type.as_str(), cache.exports[0].r#type.as_str()), ("registry", "inline"));
    assert!(solve.definition.is_none());
}

#[test]
fn a_definition_is_sent_as_is_without_frontend_attributes() {
    let definition = crate::proto::pb::Definition { def: vec![vec![1u8, 2, 3].into()], ..Default::default() };
    let mut request = BuildRequest::new(Frontend::Definition(definition.clone()));
    request.cache_imports.push(CacheEntry::registry("r/app:cache"));
    let solve = solve_request(&request, "ref1", "main1", &BTreeMap::new());
    assert_eq!(solve.frontend, "");
    assert!(solve.frontend_attrs.is_empty(), "{:?}", solve.frontend_attrs);
    assert_eq!(solve.definition, Some(definition));
    assert_eq!(solve.cache.unwrap().imports.len(), 1);
}

#[tokio::test]
async fn follow_feeds_the_stream_until_it_ends_after_the_solve() {
    let messages = vec![Ok(vertex("sha256:a", "[1/2] FROM x", true)), Ok(vertex("sha256:b", "[2/2] RUN y", false))];
    let mut tracker = StepTracker::default();
    let mut sink = Recorder::default();
    let solve = async { Ok(control_pb::SolveResponse::default()) };
    let result = follow(solve, futures::stream::iter(messages), &mut tracker, &mut sink, &CancellationToken::new())
        .await
        .expect("not cancelled");
    assert!(result.is_ok());
    assert_eq!(sink.statuses, 2, "the stream is read to its end after the solve returned");
    let summary = tracker.summary(false);
    assert_eq!((summary.steps, summary.cached), (2, 1));
}

// Tokio's paused clock: the timers below fire in virtual time, so a loaded
// machine cannot make them race.
#[tokio::test(start_paused = true)]
async fn cancel_does_not_wait_for_the_solve_or_a_silent_stream() {
    let cancel = CancellationToken::new();
    let mut tracker = StepTracker::default();
    let mut sink = Recorder::default();
    let stream =
        futures::stream::iter(vec![Ok(vertex("sha256:a", "[1/1] RUN sleep", false))]).chain(futures::stream::pending());
    let solve = std::future::pending();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        canceller.cancel();
    });
    let outcome = tokio::time::timeout(Duration::from_secs(2), follow(solve, stream, &mut tracker, &mut sink, &cancel))
        .await
        .expect("ends at once");
    assert!(outcome.is_none());
    assert_eq!(sink.statuses, 1);
}

#[tokio::test(start_paused = true)]
async fn a_silent_stream_after_the_solve_is_not_waited_for_forever() {
    let started = tokio::time::Instant::now();
    let mut tracker = StepTracker::default();
    let mut sink = Recorder::default();
    let stream = futures::stream::pending();
    let solve = async { Ok(control_pb::SolveResponse::default()) };
    let outcome = follow(solve, stream, &mut tracker, &mut sink, &CancellationToken::new()).await;
    assert!(outcome.is_some_and(|r| r.is_ok()));
    let waited = started.elapsed();
    assert!(waited >= STATUS_DRAIN_TIMEOUT && waited < STATUS_DRAIN_TIMEOUT + Duration::from_millis(10), "{waited:?}");
}
