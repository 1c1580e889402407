//! The steps of a solved graph: which ops are steps (they carry a
//! `[stage N/M] INSTRUCTION` name), what each reads from the context, which
//! build arguments it sees, and which steps feed it.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;

use super::{BaseImage, StepRecord, StepState};
use crate::proto::pb;

/// The main context's local source, as the compiler names it.
const CONTEXT_LOCAL: &str = "local://context";

/// The context's local source: what its walk includes and leaves out.
#[derive(Debug, Clone, Default)]
pub(super) struct ContextSource {
    pub(super) follow_paths: Vec<String>,
    pub(super) include_patterns: Vec<String>,
    pub(super) exclude_patterns: Vec<String>,
}

pub(super) struct Graph {
    pub(super) steps: Vec<StepRecord>,
    pub(super) context: Option<ContextSource>,
}

impl Graph {
    pub(super) fn new(definition: &pb::Definition, build_args: &BTreeMap<String, String>) -> Graph {
        let ops: Vec<(String, pb::Op)> = definition
            .def
            .iter()
            .filter_map(|bytes| Some((crate::llb::digest_of(bytes), pb::Op::decode(&bytes[..]).ok()?)))
            .collect();
        let by_digest: BTreeMap<&str, &pb::Op> = ops.iter().map(|(d, op)| (d.as_str(), op)).collect();
        let name_of =
            |digest: &str| definition.metadata.get(digest).and_then(|m| m.description.get("llb.customname")).cloned();
        let lines = source_lines(definition);
        let sources = source_texts(definition);
        let is_context = |digest: &str| {
            matches!(by_digest.get(digest).and_then(|op| op.op.as_ref()),
                Some(pb::op::Op::Source(source)) if source.identifier == CONTEXT_LOCAL)
        };
        let mut context = None;
        let mut steps = Vec::new();
        for (digest, op) in &ops {
            if let Some(pb::op::Op::Source(source)) = &op.op {
                if source.identifier == CONTEXT_LOCAL {
                    let list = |key: &str| -> Vec<String> {
                        source.attrs.get(key).and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default()
                    };
                    context = Some(ContextSource {
                        follow_paths: list("local.followpaths"),
                        include_patterns: list("local.includepattern"),
                        exclude_patterns: list("local.excludepatterns"),
                    });
                }
            }
            let Some(name) = name_of(digest) else { continue };
            let Some((stage, position, named)) = parse_name(&name) else { continue };
            // The instruction as written (build args unexpanded), when the
            // graph carries its Dockerfile; else as named.
            let text = sources.get(digest).cloned().unwrap_or(named);
            let mut own_op = op.clone();
            own_op.inputs.clear();
            let own = crate::llb::digest_of(&own_op.encode_to_vec());
            let input_digest = |index: i64| usize::try_from(index).ok().and_then(|i| op.inputs.get(i));
            let mut reads = BTreeSet::new();
            let mut args = BTreeSet::new();
            let mut base_image = None;
            let mut cache_mounts = Vec::new();
            match &op.op {
                Some(pb::op::Op::File(file)) => {
                    for action in &file.actions {
                        if let Some(pb::file_action::Action::Copy(copy)) = &action.action {
                            if input_digest(action.secondary_input).is_some_and(|i| is_context(&i.digest)) {
                                reads.insert(clean(&copy.src));
                            }
                        }
                    }
                }
                Some(pb::op::Op::Exec(exec)) => {
                    for mount in &exec.mounts {
                        if input_digest(mount.input).is_some_and(|i| is_context(&i.digest)) {
                            reads.insert(clean(&mount.selector));
                        }
                        if mount.mount_type == pb::MountType::Cache as i32 {
                            cache_mounts.extend(mount.cache_opt.as_ref().map(|c| c.id.clone()));
                        }
                    }
                    for entry in exec.meta.iter().flat_map(|m| m.env.iter()) {
                        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
                        if build_args.contains_key(key) {
                            args.insert(key.to_owned());
                        }
                    }
                }
                Some(pb::op::Op::Source(source)) => {
                    if let Some(image) = source.identifier.strip_prefix("docker-image://") {
                        base_image = Some(match image.rsplit_once('@') {
                            Some((reference, digest)) => {
                                BaseImage { reference: reference.to_owned(), digest: digest.to_owned() }
                            }
                            None => BaseImage { reference: image.to_owned(), digest: String::new() },
                        });
                    }
                }
                _ => {}
            }
            steps.push(StepRecord {
                digest: digest.clone(),
                own,
                name: name.clone(),
                stage,
                position,
                text,
                lines: lines.get(digest).cloned().unwrap_or_default(),
                inputs: Vec::new(),
                base_image,
                reads: reads.into_iter().collect(),
                args: args.into_iter().collect(),
                ignore_cache: definition.metadata.get(digest).is_some_and(|m| m.ignore_cache),
                cache_mounts,
                state: StepState::Planned,
                duration_ms: 0,
                cause: None,
            });
        }
        // The steps feeding each step, through ops that are not steps.
        let step_digests: BTreeSet<String> = steps.iter().map(|s| s.digest.clone()).collect();
        for step in &mut steps {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&str> = by_digest
                .get(step.digest.as_str())
                .map(|op| op.inputs.iter().map(|i| i.digest.as_str()).collect())
                .unwrap_or_default();
            let mut inputs = BTreeSet::new();
            while let Some(digest) = stack.pop() {
                if !seen.insert(digest) {
                    continue;
                }
                if step_digests.contains(digest) {
                    inputs.insert(digest.to_owned());
                } else if let Some(op) = by_digest.get(digest) {
                    stack.extend(op.inputs.iter().map(|i| i.digest.as_str()));
                }
            }
            step.inputs = inputs.into_iter().collect();
        }
        Graph { steps, context }
    }
}

/// `[deps 3/3] RUN pip install` → (`deps`, 3, `RUN pip install`); `[2/3]
/// COPY . .` → (``, 2, `COPY . .`). Bookkeeping names (`[internal] ...`)
/// are not steps. Image digests are left out of the text, so a base image
/// that moved is the same instruction.
pub(super) fn parse_name(name: &str) -> Option<(String, u32, String)> {
    let rest = name.strip_prefix('[')?;
    let (label, text) = rest.split_once("] ")?;
    let (stage, counts) = match label.rsplit_once(' ') {
        Some((stage, counts)) => (stage, counts),
        None => ("", label),
    };
    let (position, _) = counts.split_once('/')?;
    let position: u32 = position.parse().ok()?;
    Some((stage.to_owned(), position, strip_digests(text)))
}

fn strip_digests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("@sha256:") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + "@sha256:".len()..];
        let hex_len = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        rest = &tail[hex_len..];
    }
    out.push_str(rest);
    out
}

/// A path inside the context as the copy names it, cleaned, from the root.
fn clean(path: &str) -> String {
    let cleaned = crate::gopath::clean(&format!("/{path}"));
    if cleaned.is_empty() {
        "/".to_owned()
    } else {
        cleaned
    }
}

/// The Dockerfile text of each op's lines, from the definition's source
/// map and the Dockerfile it carries.
fn source_texts(definition: &pb::Definition) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(source) = &definition.source else { return out };
    let files: Vec<Vec<&str>> =
        source.infos.iter().map(|info| std::str::from_utf8(&info.data).unwrap_or_default().lines().collect()).collect();
    for (digest, locations) in &source.locations {
        let mut text = Vec::new();
        for location in &locations.locations {
            let Some(lines) = usize::try_from(location.source_index).ok().and_then(|i| files.get(i)) else { continue };
            for range in &location.ranges {
                let start = range.start.as_ref().map_or(0, |p| p.line).max(1) as usize;
                let end = range.end.as_ref().map_or(0, |p| p.line).max(start as i32) as usize;
                text.extend(lines.iter().skip(start - 1).take(end + 1 - start).map(|l| l.trim()));
            }
        }
        if !text.is_empty() {
            out.insert(digest.clone(), text.join("\n"));
        }
    }
    out
}

/// Dockerfile lines per op digest, from the definition's source map.
fn source_lines(definition: &pb::Definition) -> BTreeMap<String, Vec<u32>> {
    let mut out = BTreeMap::new();
    if let Some(source) = &definition.source {
        for (digest, locations) in &source.locations {
            let mut lines: Vec<u32> = locations
                .locations
                .iter()
                .flat_map(|l| l.ranges.iter())
                .flat_map(|r| {
                    let start = r.start.as_ref().map_or(0, |p| p.line).max(0) as u32;
                    let end = r.end.as_ref().map_or(0, |p| p.line).max(start as i32) as u32;
                    start..=end.min(start.saturating_add(1000))
                })
                .filter(|l| *l > 0)
                .collect();
            lines.sort_unstable();
            lines.dedup();
            out.insert(digest.clone(), lines);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_stage_position_and_text() {
        assert_eq!(parse_name("[deps 3/3] RUN pip install x"), Some(("deps".into(), 3, "RUN pip install x".into())));
        assert_eq!(parse_name("[2/3] COPY . ."), Some((String::new(), 2, "COPY . .".into())));
        let from = format!("[1/2] FROM 127.0.0.1:5000/busybox:latest@sha256:{}", "ab".repeat(32));
        assert_eq!(parse_name(&from).unwrap().2, "FROM 127.0.0.1:5000/busybox:latest");
        assert_eq!(parse_name("[internal] load build context"), None);
        assert_eq!(parse_name("exporting to image"), None);
    }
}
