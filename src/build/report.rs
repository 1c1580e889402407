//! What a finished build reports.

use std::collections::BTreeMap;

use crate::progress::Summary;

/// How much of the local folders this build really sent. The daemon keeps
/// the previous upload of each folder, so a rebuild sends only what changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Files whose content was sent.
    pub files: u64,
    /// Bytes sent: file metadata and contents, as the daemon counts them.
    pub bytes: u64,
}

/// The outcome of a successful build.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The build's reference on the daemon (its history record).
    pub build_ref: String,
    /// What the exporters said (`containerimage.digest`, `image.name`, ...),
    /// the keys buildctl writes to `--metadata-file`.
    pub exporter_response: BTreeMap<String, String>,
    /// What the local folders cost to send.
    pub transfer: TransferStats,
    /// The steps, how many came from the cache, warnings and duration.
    pub summary: Summary,
    /// Every vertex the daemon reported, in the order it first mentioned
    /// them: what build records (`crate::record`) are made of.
    pub vertices: Vec<VertexOutcome>,
}

/// One vertex of a finished build, as the status stream told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexOutcome {
    /// The vertex digest: the LLB op's digest.
    pub digest: String,
    /// The vertex name (`[deps 2/3] RUN ...`).
    pub name: String,
    /// Answered from the cache (the daemon's or an imported one).
    pub cached: bool,
    /// Started at all (the daemon skips the inputs of a cached step).
    pub started: bool,
    /// Time spent running.
    pub duration: std::time::Duration,
}

impl BuildReport {
    /// The image digest, when an image exporter ran.
    pub fn image_digest(&self) -> Option<&str> {
        self.exporter_response.get("containerimage.digest").map(String::as_str)
    }
}
