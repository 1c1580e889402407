//! A typed wrapper over buildkitd's Control service (`moby.buildkit.v1.Control`).
//!
//! This module owns the client side of every Control call: it raises tonic's
//! message limits to the daemon's (16 MiB each way), turns the CLI's options
//! into requests, and names the failed call in every error. It sets no
//! deadlines: a solve, its status stream and its session live as long as the
//! build, which may be hours. Connecting (and its deadline) belongs to
//! [`crate::connect`]; what the daemon calls back over the session belongs to
//! `session`.
//!
//! Every method takes `&self` and works on a clone of the underlying client,
//! so one [`Control`] serves a solve, its status stream and its session at
//! the same time over one HTTP/2 connection.

use std::fmt;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::Streaming;

use crate::proto::moby::buildkit::v1 as api;
use crate::proto::moby::buildkit::v1::control_client::ControlClient;
use crate::proto::moby::buildkit::v1::types::{BuildkitVersion, WorkerRecord};

/// buildkitd accepts and sends messages up to 16 MiB; tonic's default is 4 MiB,
/// which a large LLB definition or status batch exceeds.
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// A Control call that failed, with the daemon's (or transport's) status.
#[derive(Debug, thiserror::Error)]
#[error("buildkitd's Control.{call} call failed")]
pub struct ControlError {
    /// The RPC method, e.g. `Solve` or `DiskUsage`.
    pub call: &'static str,
    #[source]
    pub source: DaemonStatus,
}

impl ControlError {
    /// Names `call` as the source of `status`; also for an error read from
    /// one of its streams (the streams themselves yield bare `tonic::Status`).
    pub fn new(call: &'static str, status: tonic::Status) -> Self {
        Self { call, source: DaemonStatus(status) }
    }

    /// The gRPC status, for callers that branch on the code (e.g. `Cancelled`).
    pub fn status(&self) -> &tonic::Status {
        &self.source.0
    }
}

/// A gRPC status, displayed as its message alone.
///
/// tonic's own `Display` prints the code, the quoted message and the debug
/// form of the cause, which the error renderer would then print a second time
/// as the next cause. This keeps one line per cause.
#[derive(Debug)]
pub struct DaemonStatus(pub tonic::Status);

impl fmt::Display for DaemonStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.0.message();
        if message.is_empty() {
            write!(f, "{}", self.0.code().description())
        } else {
            f.write_str(message)
        }
    }
}

impl std::error::Error for DaemonStatus {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

/// What `prune` may delete; the fields mirror a daemon GC policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Also delete internal and frontend records.
    pub all: bool,
    /// Daemon filter expressions, e.g. `type==exec.cachemount`.
    pub filters: Vec<String>,
    /// Keep records used more recently than this.
    pub keep_duration: Option<Duration>,
    /// Bytes the cache may always keep, whatever the other limits say.
    pub reserved_space: i64,
    /// Bytes the cache may use at most (buildctl's `--keep-storage`).
    pub max_used_space: i64,
    /// Bytes to keep free on the daemon's disk.
    pub min_free_space: i64,
}

impl PruneOptions {
    fn into_request(self) -> api::PruneRequest {
        api::PruneRequest {
            filter: self.filters,
            all: self.all,
            keep_duration: self.keep_duration.map_or(0, duration_nanos),
            reserved_space: self.reserved_space,
            max_used_space: self.max_used_space,
            min_free_space: self.min_free_space,
        }
    }
}

/// Go's `time.Duration` (what the daemon expects) is an i64 of nanoseconds;
/// longer durations saturate rather than wrap.
fn duration_nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// A client of buildkitd's Control service on one channel.
#[derive(Debug, Clone)]
pub struct Control {
    client: ControlClient<Channel>,
    channel: Channel,
}

impl Control {
    /// Wraps a connected channel (see [`crate::connect`]).
    pub fn new(channel: Channel) -> Self {
        let client = ControlClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Self { client, channel }
    }

    /// The channel, for other services on the same connection (the gateway's
    /// LLBBridge must share it with the solve it belongs to).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The daemon's version.
    pub async fn info(&self) -> Result<BuildkitVersion, ControlError> {
        let response =
            self.client.clone().info(api::InfoRequest {}).await.map_err(|status| ControlError::new("Info", status))?;
        Ok(response.into_inner().buildkit_version.unwrap_or_default())
    }

    /// The daemon's workers, optionally narrowed by containerd-style filters.
    pub async fn list_workers(&self, filters: Vec<String>) -> Result<Vec<WorkerRecord>, ControlError> {
        let response = self
            .client
            .clone()
            .list_workers(api::ListWorkersRequest { filter: filters })
            .await
            .map_err(|status| ControlError::new("ListWorkers", status))?;
        Ok(response.into_inner().record)
    }

    /// The cache records matching `filters` (all when empty), as the daemon
    /// lists them. With `unused_for`, only records unused at least that long.
    pub async fn disk_usage(
        &self,
        filters: Vec<String>,
        unused_for: Option<Duration>,
    ) -> Result<Vec<api::UsageRecord>, ControlError> {
        let request = api::DiskUsageRequest { filter: filters, age_limit: unused_for.map_or(0, duration_nanos) };
        let response =
            self.client.clone().disk_usage(request).await.map_err(|status| ControlError::new("DiskUsage", status))?;
        Ok(response.into_inner().record)
    }

    /// Starts a prune; the stream yields each record as the daemon deletes it.
    /// Errors on the stream are `tonic::Status`; wrap them with
    /// [`ControlError::new`] to name the call.
    pub async fn prune(&self, options: PruneOptions) -> Result<Streaming<api::UsageRecord>, ControlError> {
        let response = self
            .client
            .clone()
            .prune(options.into_request())
            .await
            .map_err(|status| ControlError::new("Prune", status))?;
        Ok(response.into_inner())
    }

    /// Runs a build to its end. Dropping the future cancels the call, and the
    /// daemon then stops the build.
    pub async fn solve(&self, request: api::SolveRequest) -> Result<api::SolveResponse, ControlError> {
        let response = self.client.clone().solve(request).await.map_err(|status| ControlError::new("Solve", status))?;
        Ok(response.into_inner())
    }

    /// The progress stream of the solve whose `Ref` is `build_ref`. It may be
    /// opened before the solve starts; it ends when the solve does.
    pub async fn status(&self, build_ref: &str) -> Result<Streaming<api::StatusResponse>, ControlError> {
        let response = self
            .client
            .clone()
            .status(api::StatusRequest { r#ref: build_ref.to_owned() })
            .await
            .map_err(|status| ControlError::new("Status", status))?;
        Ok(response.into_inner())
    }

    /// Opens the session tunnel. `outgoing` is our side of the HTTP/2 byte
    /// stream as a request body of gRPC-framed `BytesMessage`s (see
    /// `session::tunnel`, which frames them without tonic's copy);
    /// `metadata` carries the `X-Docker-Expose-Session-*` headers the daemon
    /// needs. The call is made on the channel itself, as tonic's generated
    /// client would make it. The daemon's side comes back as the response
    /// body, its `BytesMessage`s still framed: the tunnel cuts them apart
    /// without tonic's copy too.
    pub async fn session(
        &self,
        metadata: tonic::metadata::MetadataMap,
        outgoing: tonic::body::Body,
    ) -> Result<tonic::body::Body, ControlError> {
        use tower::ServiceExt;
        let fail = |status| ControlError::new("Session", status);
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri("/moby.buildkit.v1.Control/Session")
            .version(http::Version::HTTP_2)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(outgoing)
            .expect("a valid request head");
        request.headers_mut().extend(metadata.into_headers());
        let response = self
            .channel
            .clone()
            .oneshot(request)
            .await
            .map_err(|error| fail(tonic::Status::from_error(Box::new(error))))?;
        // As tonic's client reads a response: a `grpc-status` in the headers
        // is a trailers-only answer (an error, or an empty stream).
        let (head, body) = response.into_parts();
        match tonic::Status::from_header_map(&head.headers) {
            Some(status) if status.code() != tonic::Code::Ok => Err(fail(status)),
            Some(_) => Ok(tonic::body::Body::empty()),
            None if head.status != http::StatusCode::OK => {
                Err(fail(tonic::Status::unknown(format!("the daemon answered HTTP {}", head.status))))
            }
            None => Ok(body),
        }
    }

    /// Build history events. With `early_exit` the stream ends after the
    /// records the daemon holds now; without it, it follows new builds. The
    /// response's metadata carries the daemon's clock
    /// (`buildkit-current-timestamp`), which running builds are timed by.
    pub async fn list_history(
        &self,
        request: api::BuildHistoryRequest,
    ) -> Result<tonic::Response<Streaming<api::BuildHistoryEvent>>, ControlError> {
        self.client
            .clone()
            .listen_build_history(request)
            .await
            .map_err(|status| ControlError::new("ListenBuildHistory", status))
    }

    /// Pins, deletes or finalizes one build history record.
    pub async fn update_history(&self, request: api::UpdateBuildHistoryRequest) -> Result<(), ControlError> {
        self.client
            .clone()
            .update_build_history(request)
            .await
            .map_err(|status| ControlError::new("UpdateBuildHistory", status))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn prune_options_become_a_request() {
        let request = PruneOptions {
            all: true,
            filters: vec!["type==exec.cachemount".into()],
            keep_duration: Some(Duration::from_secs(24 * 3600)),
            reserved_space: 1,
            max_used_space: 10_000_000_000,
            min_free_space: 3,
        }
        .into_request();
        assert_eq!(
            request,
            api::PruneRequest {
                filter: vec!["type==exec.cachemount".into()],
                all: true,
                keep_duration: 86_400_000_000_000,
                reserved_space: 1,
                max_used_space: 10_000_000_000,
                min_free_space: 3,
            }
        );
        assert_eq!(PruneOptions::default().into_request().keep_duration, 0);
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(duration_nanos(Duration::from_secs(u64::MAX)), i64::MAX);
    }

    #[test]
    fn error_names_the_call_and_keeps_the_message_once() {
        let err = ControlError::new("DiskUsage", tonic::Status::permission_denied("no access to the socket"));
        assert_eq!(err.to_string(), "buildkitd's Control.DiskUsage call failed");
        let cause = err.source().expect("the status is the source");
        assert_eq!(cause.to_string(), "no access to the socket");
        assert_eq!(err.status().code(), tonic::Code::PermissionDenied);

        let empty = ControlError::new("Info", tonic::Status::new(tonic::Code::Unavailable, ""));
        assert_eq!(empty.source().map(ToString::to_string).as_deref(), Some("The service is currently unavailable"));
    }
}
