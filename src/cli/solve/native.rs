//! `--frontend auto|native` and `--print-llb`: the Dockerfile compiled in
//! this process ([`crate::dockerfile::NativeFrontend`]) instead of by the
//! daemon's frontend.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::build::Frontend;
use crate::dockerfile::{NativeFrontend, NativeMode};
use crate::proto::pb;

use super::plan::SolvePlan;

/// The daemon's Dockerfile frontend, which `auto` falls back to.
pub(super) const DAEMON_DOCKERFILE: &str = "dockerfile.v0";

/// Which compiler `--frontend NAME` selects: ours (`Some`) or a daemon
/// frontend by that name (`None`).
pub(super) fn mode(name: &str) -> Option<NativeMode> {
    match name {
        "auto" => Some(NativeMode::Auto),
        "native" => Some(NativeMode::Native),
        _ => None,
    }
}

/// Puts the native frontend in the plan in place of the daemon's, when it
/// can run here: a local Dockerfile, and a build rather than a subrequest.
/// `auto` with a remote context or `--call` keeps the daemon's frontend.
pub(super) fn install(plan: &mut SolvePlan, mode: NativeMode, print_only: bool) -> Option<Arc<NativeFrontend>> {
    let Frontend::Daemon { name, attrs } = &mut plan.request.frontend else { return None };
    *name = DAEMON_DOCKERFILE.to_owned();
    if plan.call.is_some() || plan.dockerfile.text.is_empty() && !print_only {
        return None;
    }
    let context = plan.request.locals.get("context").cloned();
    let excludes = dockerignore(&plan.dockerfile.dir.join(&plan.dockerfile.name), context.as_deref());
    let mut frontend = NativeFrontend::new(
        plan.dockerfile.text.clone(),
        plan.dockerfile.display.clone(),
        excludes,
        attrs.clone(),
        mode,
    );
    if print_only {
        frontend = frontend.print_only();
    }
    // buildx's default provenance is `inline-only`: only the exporters that
    // attach attestations to an image write it; a folder or tarball gets none.
    let inline_only =
        attrs.get("attest:provenance").is_some_and(|v| v.split(',').any(|field| field.trim() == "inline-only=true"));
    let writes_attestations = plan.request.exports.iter().any(|export| {
        !inline_only
            || matches!(
                export.exporter,
                crate::output::ExporterType::Image
                    | crate::output::ExporterType::Oci
                    | crate::output::ExporterType::Docker
            )
    });
    if !writes_attestations {
        frontend = frontend.without_exports();
    }

    let frontend = Arc::new(frontend);
    plan.request.frontend = Frontend::Client(frontend.clone());
    Some(frontend)
}

/// `--call check` with the native compiler selected: the native linter
/// answers, with the Dockerfile and `.dockerignore` the daemon's frontend
/// would read (a local Dockerfile only).
pub(super) fn with_native_check(frontend: super::call::CallFrontend, plan: &SolvePlan) -> super::call::CallFrontend {
    if plan.dockerfile.text.is_empty() {
        return frontend;
    }
    let context = plan.request.locals.get("context");
    let excludes = dockerignore(&plan.dockerfile.dir.join(&plan.dockerfile.name), context.map(|c| c.as_path()));
    frontend.with_native_lint(plan.dockerfile.text.clone(), excludes)
}

/// The `.dockerignore` the daemon's frontend would read: `<Dockerfile>.dockerignore`
/// beside the Dockerfile, else the context's.
fn dockerignore(dockerfile: &Path, context: Option<&Path>) -> Vec<String> {
    let beside = dockerfile.with_file_name(format!(
        "{}.dockerignore",
        dockerfile.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let candidates = [Some(beside), context.map(|c| c.join(".dockerignore"))];
    for path in candidates.into_iter().flatten() {
        if let Ok(content) = std::fs::read(&path) {
            return crate::fsync::patterns::parse_dockerignore(&content);
        }
    }
    Vec::new()
}

/// The graph as JSON: one entry per op with its digest, kind, inputs, name
/// and the Dockerfile lines it came from.
pub(super) fn llb_json(definition: &pb::Definition) -> serde_json::Value {
    let ops = decoded(definition);
    let lines = source_lines(definition);
    let entries: Vec<serde_json::Value> = ops
        .iter()
        .map(|(digest, op)| {
            let metadata = definition.metadata.get(digest);
            let mut entry = serde_json::json!({
                "digest": digest,
                "op": describe(op),
                "inputs": op.inputs.iter().map(|i| format!("{}:{}", i.digest, i.index)).collect::<Vec<_>>(),
            });
            if let Some(name) = metadata.and_then(|m| m.description.get("llb.customname")) {
                entry["name"] = name.clone().into();
            }
            if let Some(lines) = lines.get(digest) {
                entry["lines"] = serde_json::json!(lines);
            }
            entry
        })
        .collect();
    serde_json::Value::Array(entries)
}

/// The graph for Graphviz (`dot -Tsvg`).
pub(super) fn llb_dot(definition: &pb::Definition) -> String {
    let mut out = String::from("digraph llb {\n  rankdir=BT;\n  node [shape=box, fontname=monospace];\n");
    for (digest, op) in decoded(definition) {
        let name = definition
            .metadata
            .get(&digest)
            .and_then(|m| m.description.get("llb.customname").cloned())
            .unwrap_or_else(|| describe(&op)["kind"].as_str().unwrap_or("op").to_owned());
        let short = &digest[digest.len().saturating_sub(12)..];
        out.push_str(&format!("  \"{digest}\" [label={}];\n", serde_json::Value::from(format!("{name}\n{short}"))));
        for input in &op.inputs {
            out.push_str(&format!("  \"{}\" -> \"{digest}\";\n", input.digest));
        }
    }
    out.push_str("}\n");
    out
}

fn decoded(definition: &pb::Definition) -> Vec<(String, pb::Op)> {
    use prost::Message as _;
    definition
        .def
        .iter()
        .filter_map(|bytes| {
            let op = pb::Op::decode(&bytes[..]).ok()?;
            Some((crate::llb::digest_of(bytes), op))
        })
        .collect()
}

fn describe(op: &pb::Op) -> serde_json::Value {
    use pb::op::Op as Kind;
    match &op.op {
        Some(Kind::Source(source)) => serde_json::json!({"kind": "source", "identifier": source.identifier}),
        Some(Kind::Exec(exec)) => serde_json::json!({
            "kind": "exec",
            "args": exec.meta.as_ref().map(|m| m.args.clone()).unwrap_or_default(),
            "mounts": exec.mounts.iter().map(|m| m.dest.clone()).collect::<Vec<_>>(),
        }),
        Some(Kind::File(file)) => serde_json::json!({"kind": "file", "actions": file.actions.len()}),
        Some(Kind::Merge(_)) => serde_json::json!({"kind": "merge"}),
        Some(Kind::Diff(_)) => serde_json::json!({"kind": "diff"}),
        Some(Kind::Build(_)) => serde_json::json!({"kind": "build"}),
        Some(_) => serde_json::json!({"kind": "other"}),
        None => serde_json::json!({"kind": "result"}),
    }
}

/// Dockerfile lines per op digest, from the definition's source map.
fn source_lines(definition: &pb::Definition) -> BTreeMap<String, Vec<i32>> {
    let mut out = BTreeMap::new();
    if let Some(source) = &definition.source {
        for (digest, locations) in &source.locations {
            let lines: Vec<i32> = locations
                .locations
                .iter()
                .flat_map(|l| l.ranges.iter().map(|r| r.start.as_ref().map_or(0, |p| p.line)))
                .collect();
            out.insert(digest.clone(), lines);
        }
    }
    out
}
