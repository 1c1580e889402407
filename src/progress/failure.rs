//! What a failed build says about where it failed: the typed error details
//! the daemon attaches to a failed solve, and the Dockerfile excerpt printed
//! around a failing (or warned-about) instruction.
//!
//! buildkitd puts `errdefs.Vertex` (the failed step) and `errdefs.Source`
//! (file name, file text and line ranges) into the `details` of the gRPC
//! status. They travel as `Any` values whose type URL ends in `+json` and
//! whose value is the Go JSON encoding of the message (BuildKit registers
//! them with containerd's typeurl that way), not protobuf bytes; a protobuf
//! encoding is accepted too, in case a server sends one.

use std::io::{self, Write};

use base64::Engine as _;
use prost::Message as _;
use serde::Deserialize;

use crate::proto::google::rpc::Status as RpcStatus;
use crate::proto::pb;

/// A range of 1-based lines in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRange {
    /// The first line.
    pub start: i32,
    /// The last line (the same as `start` for one line).
    pub end: i32,
}

impl LineRange {
    pub(crate) fn from_proto(range: &pb::Range) -> Option<LineRange> {
        let start = range.start.as_ref()?.line;
        let end = range.end.as_ref().map_or(start, |e| e.line);
        Some(LineRange { start, end })
    }

    /// The last line, for a range written backwards too.
    fn last(&self) -> i32 {
        self.end.max(self.start)
    }
}

/// A place in a source file: the file's name and text, and the lines meant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceSnippet {
    /// The file's name as the frontend gave it (`Dockerfile`).
    pub filename: String,
    /// The whole file; empty when the daemon did not send it.
    pub text: String,
    /// The lines meant.
    pub ranges: Vec<LineRange>,
}

impl SourceSnippet {
    /// A snippet from BuildKit's protobuf source info and ranges, the form
    /// error details, warnings and LLB source maps all carry.
    pub(crate) fn from_proto(info: &pb::SourceInfo, ranges: &[pb::Range]) -> Self {
        SourceSnippet {
            filename: info.filename.clone(),
            text: String::from_utf8_lossy(&info.data).into_owned(),
            ranges: ranges.iter().filter_map(LineRange::from_proto).collect(),
        }
    }
}

/// A build file the caller read itself, used when the daemon's source
/// information names a file but omits its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path the caller read it from.
    pub name: String,
    /// The whole file.
    pub text: String,
}

impl SourceFile {
    /// A build file by its path and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile { name: name.into(), text: text.into() }
    }
}

/// Why a solve failed, as far as the daemon told us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildFailure {
    /// The daemon's error message.
    pub message: String,
    /// The digest of the vertex that failed, when known.
    pub vertex: Option<String>,
    /// Source locations of the failure, innermost first.
    pub sources: Vec<SourceSnippet>,
}

impl BuildFailure {
    /// A failure known only by its message (e.g. the connection broke).
    pub fn new(message: impl Into<String>) -> Self {
        BuildFailure { message: message.into(), ..Default::default() }
    }

    /// Reads the message and typed details of the status a failed `Solve` returned.
    pub fn from_status(status: &tonic::Status) -> Self {
        let mut failure = BuildFailure::new(status.message());
        // The details are a serialized google.rpc.Status; when they do not
        // decode, the message alone is still worth showing.
        if let Ok(rpc) = RpcStatus::decode(status.details()) {
            failure.add_details(&rpc);
        }
        failure
    }

    /// Reads a `google.rpc.Status` carried in a message body (a build history
    /// record, a gateway `Return`).
    pub fn from_rpc_status(status: &RpcStatus) -> Self {
        let mut failure = BuildFailure::new(status.message.clone());
        failure.add_details(status);
        failure
    }

    fn add_details(&mut self, status: &RpcStatus) {
        for any in &status.details {
            let url = any.type_url.as_str();
            let (name, json) = match url.strip_suffix("+json") {
                Some(name) => (name, true),
                None => (url, false),
            };
            if name.ends_with("errdefs.Source") {
                if let Some(source) = decode_source(&any.value, json) {
                    if !self.sources.contains(&source) {
                        self.sources.push(source);
                    }
                }
            } else if name.ends_with("errdefs.Vertex") {
                if let Some(digest) = decode_vertex(&any.value, json) {
                    self.vertex.get_or_insert(digest);
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct JsonVertex {
    #[serde(default)]
    digest: String,
}

#[derive(Deserialize)]
struct JsonSource {
    info: Option<JsonSourceInfo>,
    #[serde(default)]
    ranges: Vec<JsonRange>,
}

#[derive(Deserialize)]
struct JsonSourceInfo {
    #[serde(default)]
    filename: String,
    /// Go encodes `[]byte` as standard base64.
    #[serde(default)]
    data: Option<String>,
}

#[derive(Deserialize)]
struct JsonRange {
    start: Option<JsonPosition>,
    end: Option<JsonPosition>,
}

#[derive(Deserialize)]
struct JsonPosition {
    #[serde(default)]
    line: i32,
}

fn decode_vertex(value: &[u8], json: bool) -> Option<String> {
    let digest = if json {
        serde_json::from_slice::<JsonVertex>(value).ok()?.digest
    } else {
        crate::proto::errdefs::Vertex::decode(value).ok()?.digest
    };
    (!digest.is_empty()).then_some(digest)
}

fn decode_source(value: &[u8], json: bool) -> Option<SourceSnippet> {
    if !json {
        let source = crate::proto::errdefs::Source::decode(value).ok()?;
        return Some(SourceSnippet::from_proto(source.info.as_ref()?, &source.ranges));
    }
    let source: JsonSource = serde_json::from_slice(value).ok()?;
    let info = source.info?;
    let data = match info.data {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
        None => Vec::new(),
    };
    let ranges = source
        .ranges
        .iter()
        .filter_map(|r| {
            let start = r.start.as_ref()?.line;
            Some(LineRange { start, end: r.end.as_ref().map_or(start, |e| e.line) })
        })
        .collect();
    Some(SourceSnippet { filename: info.filename, text: String::from_utf8_lossy(&data).into_owned(), ranges })
}

/// Fills in a snippet's text from the caller's copy of the file when the
/// daemon left it out.
pub(crate) fn with_text(snippet: &SourceSnippet, fallback: Option<&SourceFile>) -> Option<SourceSnippet> {
    if !snippet.text.is_empty() {
        return Some(snippet.clone());
    }
    let file = fallback?;
    let same_file = snippet.filename.is_empty()
        || snippet.filename == file.name
        || std::path::Path::new(&file.name).file_name().and_then(|n| n.to_str()) == Some(snippet.filename.as_str());
    same_file.then(|| SourceSnippet {
        filename: if snippet.filename.is_empty() { file.name.clone() } else { snippet.filename.clone() },
        text: file.text.clone(),
        ranges: snippet.ranges.clone(),
    })
}

/// Prints the lines around `ranges` with line numbers and `>>>` on the lines
/// meant, the way buildctl and buildx show a failing Dockerfile instruction:
/// two lines of context on each side of a single line, one around a span.
/// Prints nothing when the ranges fall outside the text.
pub fn write_source_context(out: &mut dyn Write, snippet: &SourceSnippet) -> io::Result<()> {
    let lines: Vec<&str> = snippet.text.split('\n').collect();
    let Some(first) = snippet.ranges.iter().map(|r| r.start).min() else {
        return Ok(());
    };
    let last = snippet.ranges.iter().map(LineRange::last).max().unwrap_or(first);
    let count = lines.len();
    let (Ok(mut start), Ok(end)) = (usize::try_from(first), usize::try_from(last)) else {
        return Ok(());
    };
    if start < 1 || start > count {
        return Ok(());
    }
    let mut end = end.clamp(start, count);
    let reported = start;
    // Widen one line each way per round until `pad` is used up; rounds that
    // cannot widen still count, so an instruction at the top or bottom of
    // the file gets less context, exactly as BuildKit prints it.
    let pad = if start == end { 4 } else { 2 };
    let mut used = 0;
    while used < pad {
        if start > 1 {
            start -= 1;
            used += 1;
        }
        if end != count {
            end += 1;
            used += 1;
        }
        used += 1;
    }
    writeln!(out, "{}:{}", snippet.filename, reported)?;
    writeln!(out, "--------------------")?;
    for number in start..=end {
        let marked =
            snippet.ranges.iter().any(|r| i64::from(r.start) <= number as i64 && i64::from(r.last()) >= number as i64);
        let prefix = if marked { ">>>" } else { "   " };
        writeln!(out, " {number:>3} | {prefix} {}", lines[number - 1])?;
    }
    writeln!(out, "--------------------")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::model::tests::range;

    const DOCKERFILE: &str = "FROM busybox\nRUN one\nCOPY a b\nRUN four\nRUN cat /x && exit 3\n";

    fn context(ranges: Vec<LineRange>) -> String {
        let snippet = SourceSnippet { filename: "Dockerfile".into(), text: DOCKERFILE.into(), ranges };
        let mut out = Vec::new();
        write_source_context(&mut out, &snippet).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_line_gets_two_lines_each_side_and_the_trailing_empty_line() {
        // The same shape buildctl printed for this file (see testdata).
        assert_eq!(
            context(vec![LineRange { start: 5, end: 5 }]),
            "Dockerfile:5\n--------------------\n   3 |     COPY a b\n   4 |     RUN four\n   5 | >>> RUN cat /x && exit 3\n   6 |     \n--------------------\n"
        );
    }

    #[test]
    fn first_line_gets_context_below_only() {
        assert_eq!(
            context(vec![LineRange { start: 1, end: 1 }]),
            "Dockerfile:1\n--------------------\n   1 | >>> FROM busybox\n   2 |     RUN one\n   3 |     COPY a b\n--------------------\n"
        );
    }

    #[test]
    fn span_is_marked_on_every_line() {
        assert_eq!(
            context(vec![LineRange { start: 2, end: 3 }]),
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> RUN one\n   3 | >>> COPY a b\n   4 |     RUN four\n--------------------\n"
        );
    }

    #[test]
    fn out_of_range_prints_nothing() {
        assert_eq!(context(vec![LineRange { start: 40, end: 41 }]), "");
        assert_eq!(context(vec![LineRange { start: 0, end: 0 }]), "");
        assert_eq!(context(vec![]), "");
    }

    fn any(type_url: &str, value: Vec<u8>) -> prost_types::Any {
        prost_types::Any { type_url: type_url.into(), value }
    }

    #[test]
    fn decodes_json_details_the_way_buildkitd_sends_them() {
        let data = base64::engine::general_purpose::STANDARD.encode(DOCKERFILE);
        let source = format!(
            r#"{{"info":{{"filename":"Dockerfile","data":"{data}","language":"Dockerfile"}},"ranges":[{{"start":{{"line":5}},"end":{{"line":5}}}}]}}"#
        );
        let rpc = RpcStatus {
            code: 2,
            message: "process did not complete successfully: exit code: 3".into(),
            details: vec![
                any("github.com/moby/buildkit/stack.Stack+json", b"{}".to_vec()),
                any("github.com/moby/buildkit/errdefs.Vertex+json", br#"{"digest":"sha256:abc"}"#.to_vec()),
                any("github.com/moby/buildkit/errdefs.Source+json", source.into_bytes()),
            ],
        };
        let status = tonic::Status::with_details(
            tonic::Code::Unknown,
            rpc.message.clone(),
            bytes::Bytes::from(rpc.encode_to_vec()),
        );
        let failure = BuildFailure::from_status(&status);
        assert_eq!(failure.message, "process did not complete successfully: exit code: 3");
        assert_eq!(failure.vertex.as_deref(), Some("sha256:abc"));
        assert_eq!(failure.sources.len(), 1);
        assert_eq!(failure.sources[0].text, DOCKERFILE);
        assert_eq!(failure.sources[0].ranges, vec![LineRange { start: 5, end: 5 }]);
    }

    #[test]
    fn decodes_protobuf_details_too() {
        let source = crate::proto::errdefs::Source {
            info: Some(pb::SourceInfo { filename: "Dockerfile".into(), data: DOCKERFILE.into(), ..Default::default() }),
            ranges: vec![range(2, 0, 7)],
        };
        let rpc = RpcStatus {
            code: 2,
            message: "boom".into(),
            details: vec![any("type.googleapis.com/errdefs.Source", source.encode_to_vec())],
        };
        let failure = BuildFailure::from_rpc_status(&rpc);
        assert_eq!(failure.sources[0].ranges, vec![LineRange { start: 2, end: 2 }]);
        assert_eq!(failure.vertex, None);
    }

    #[test]
    fn garbage_details_leave_the_message() {
        let status = tonic::Status::with_details(tonic::Code::Unknown, "boom", bytes::Bytes::from_static(b"\xff\xff"));
        assert_eq!(BuildFailure::from_status(&status), BuildFailure::new("boom"));
    }

    #[test]
    fn fills_missing_text_from_the_callers_file() {
        let snippet = SourceSnippet { filename: "Dockerfile".into(), text: String::new(), ranges: vec![] };
        let file = SourceFile::new("ctx/Dockerfile", "FROM x\n");
        assert_eq!(with_text(&snippet, Some(&file)).map(|s| s.text), Some("FROM x\n".to_string()));
        let other = SourceFile::new("Other.Dockerfile", "FROM y\n");
        assert_eq!(with_text(&snippet, Some(&other)), None);
    }
}
