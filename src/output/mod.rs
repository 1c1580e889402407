//! Build outputs: what `-o/--output`, `-t/--tag` and `--push` ask the daemon to
//! export, and the receiving end of the exports that come back to us.
//!
//! - [`parse`] turns the flags into [`ExportEntry`]s with buildx's CSV syntax
//!   and rules; [`solve_exporters`] turns them into `SolveRequest.exporters`.
//! - [`filesend`] is the session's `FileSend` service: the daemon calls it
//!   once per tar/oci/docker/local output, naming the output by its position
//!   in `SolveRequest.exporters` (the `buildkit-attachable-exporter-id`
//!   metadata), so the same list must feed both.
//! - [`sink`] writes a single-file output so it appears at its destination
//!   only when complete. Folder outputs are received by `crate::fsync`.

pub mod filesend;
pub mod parse;
pub mod sink;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use filesend::{FileSendService, PendingOutputs};
pub use parse::{csv_fields, exports_from_flags, parse_output, OutputError, OutputProblem};

use crate::proto::moby::buildkit::v1::Exporter;

/// An exporter as the daemon names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ExporterType {
    /// An image in the daemon's store and/or pushed to a registry.
    Image,
    /// The result's files, copied into a folder on our side.
    Local,
    /// The result's files as one tarball.
    Tar,
    /// An OCI image layout, as a tarball.
    Oci,
    /// A `docker load`-able tarball.
    Docker,
}

impl ExporterType {
    /// The name the daemon knows the exporter by (`SolveRequest.exporters[].type`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExporterType::Image => "image",
            ExporterType::Local => "local",
            ExporterType::Tar => "tar",
            ExporterType::Oci => "oci",
            ExporterType::Docker => "docker",
        }
    }
}

impl fmt::Display for ExporterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an exported file or folder lands on our side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputDest {
    /// A folder (`type=local`): the result's files are copied into it.
    Dir(PathBuf),
    /// A file (`type=tar|oci|docker`), written to a temporary name and
    /// renamed into place once complete.
    File(PathBuf),
    /// Our standard output (`dest=-`), streamed as it arrives.
    Stdout,
    /// An OCI layout folder (`type=oci|docker,tar=false`): the daemon writes
    /// its blobs through the session's content store, and `index.json`
    /// names the image once the build is done.
    Layout(PathBuf),
}

/// One output of a build: an exporter, its attributes, and for exporters
/// that send their result back to us, where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportEntry {
    /// The exporter that runs in the daemon.
    pub exporter: ExporterType,
    /// The exporter's attributes as the daemon reads them (`dest` removed:
    /// it is ours, not the daemon's).
    pub attrs: BTreeMap<String, String>,
    /// Where the output lands on our side; `None` for an image, which stays
    /// in the daemon or goes to a registry.
    pub destination: Option<OutputDest>,
}

impl ExportEntry {
    /// Whether the entry pushes: `push` set to a true value, or empty, which
    /// the image exporter reads as true.
    pub fn pushes(&self) -> bool {
        self.attrs.get("push").is_some_and(|v| v.is_empty() || crate::gostrconv::parse_bool(v) == Some(true))
    }

    /// The entry as the daemon receives it in `SolveRequest.exporters`.
    pub fn to_exporter(&self) -> Exporter {
        Exporter { r#type: self.exporter.as_str().to_owned(), attrs: self.attrs.clone() }
    }
}

/// `SolveRequest.exporters` for `entries`, in order. The daemon names each
/// output it sends back by its index here, and [`FileSendService::new`] maps
/// the same indexes to destinations, so build both from one list.
pub fn solve_exporters(entries: &[ExportEntry]) -> Vec<Exporter> {
    entries.iter().map(ExportEntry::to_exporter).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_exporters_keep_order_type_names_and_attrs() {
        let entries = vec![
            ExportEntry {
                exporter: ExporterType::Image,
                attrs: [("name".to_owned(), "r/a:1".to_owned())].into(),
                destination: None,
            },
            ExportEntry {
                exporter: ExporterType::Local,
                attrs: BTreeMap::new(),
                destination: Some(OutputDest::Dir("out".into())),
            },
        ];
        let exporters = solve_exporters(&entries);
        assert_eq!(exporters.len(), 2);
        assert_eq!(exporters[0].r#type, "image");
        assert_eq!(exporters[0].attrs["name"], "r/a:1");
        assert_eq!(exporters[1].r#type, "local");
        assert!(exporters[1].attrs.is_empty());
    }
}
