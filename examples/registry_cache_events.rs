//! Builds a Dockerfile project with a registry cache (imported before the
//! build, exported after it), collecting the daemon's progress events in the
//! program instead of drawing them, then prints one line per step: cached or
//! how long it ran.
//!
//! ```sh
//! cargo run --example registry_cache_events -- CONTEXT CACHE_REF [NAME=VALUE]...
//! # e.g., against the test environment (scripts/testenv.sh up):
//! source .testenv/env
//! cargo run --example registry_cache_events -- examples/python-service \
//!     $FBUILD_TEST_REGISTRY/python-service:cache BASE=$FBUILD_TEST_BUSYBOX
//! ```
//!
//! Run it twice: the second run (or one on another machine) takes its steps
//! from the cache. The daemon is `$BUILDKIT_HOST`, else the default socket.

// An example program talks to its user directly.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::time::Duration;

use fbuild::build::{build, BuildEnd, BuildRequest, CancellationToken, ProgressSink};
use fbuild::cache::{CacheDirection, CacheEntry};
use fbuild::connect::{connect, ConnectOptions};
use fbuild::proto::moby::buildkit::v1::StatusResponse;

/// What the program keeps of each step (vertex) the daemon reports.
#[derive(Debug, Default)]
struct Step {
    name: String,
    cached: bool,
    ran_for: Option<Duration>,
    error: String,
}

/// A progress sink that records instead of drawing.
#[derive(Debug, Default)]
struct Events {
    /// Steps by digest, and the order they started in.
    steps: BTreeMap<String, Step>,
    order: Vec<String>,
    messages: usize,
    ended: Option<String>,
}

impl ProgressSink for Events {
    fn on_status(&mut self, status: &StatusResponse) {
        self.messages += 1;
        for vertex in &status.vertexes {
            if !self.steps.contains_key(&vertex.digest) {
                self.order.push(vertex.digest.clone());
            }
            let step = self.steps.entry(vertex.digest.clone()).or_default();
            step.name.clone_from(&vertex.name);
            step.cached |= vertex.cached;
            if let (Some(started), Some(completed)) = (&vertex.started, &vertex.completed) {
                let nanos =
                    (completed.seconds - started.seconds) * 1_000_000_000 + i64::from(completed.nanos - started.nanos);
                step.ran_for = Some(Duration::from_nanos(nanos.max(0) as u64));
            }
            if !vertex.error.is_empty() {
                step.error.clone_from(&vertex.error);
            }
        }
    }

    fn on_end(&mut self, end: BuildEnd<'_>) {
        self.ended = Some(match end {
            BuildEnd::Succeeded => "succeeded".to_string(),
            BuildEnd::Failed(failure) => format!("failed: {}", failure.message),
            BuildEnd::Cancelled => "cancelled".to_string(),
            // BuildEnd is #[non_exhaustive]: later versions may add endings.
            _ => "ended".to_string(),
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(context), Some(cache_ref)) = (args.next(), args.next()) else {
        return Err("usage: registry_cache_events CONTEXT CACHE_REF [NAME=VALUE]...".into());
    };
    let mut request = BuildRequest::dockerfile(&context);
    for arg in args {
        let (name, value) = arg.split_once('=').ok_or_else(|| format!("{arg:?} is not NAME=VALUE"))?;
        request = request.attr(format!("build-arg:{name}"), value);
    }
    // The same syntax as --cache-from / --cache-to.
    request.cache_imports.push(CacheEntry::registry(&cache_ref));
    let mut export = CacheEntry::parse(&format!("type=registry,ref={cache_ref},mode=max"), CacheDirection::Export)?;
    // The test registry speaks plain HTTP.
    if cache_ref.starts_with("127.0.0.1:") || cache_ref.starts_with("localhost:") {
        export.attrs.insert("registry.insecure".into(), "true".into());
    }
    request.cache_exports.push(export);

    let options = ConnectOptions { addr: std::env::var("BUILDKIT_HOST").ok(), ..Default::default() };
    let connection = connect(&options).await?;
    let mut events = Events::default();
    let result = build(&connection.channel, request, &mut events, &CancellationToken::new()).await;

    println!("{} status messages; the build {}", events.messages, events.ended.as_deref().unwrap_or("?"));
    for digest in &events.order {
        let step = &events.steps[digest];
        let how = match (&step.error, step.cached, step.ran_for) {
            (error, _, _) if !error.is_empty() => format!("FAILED ({error})"),
            (_, true, _) => "CACHED".to_string(),
            (_, false, Some(time)) => format!("{:.1}s", time.as_secs_f64()),
            (_, false, None) => "-".to_string(),
        };
        println!("{how:>10}  {}", step.name);
    }
    let report = result?;
    println!("{} of {} steps from the cache", report.summary.cached, report.summary.steps);
    Ok(())
}
