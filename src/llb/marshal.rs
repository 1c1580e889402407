//! Turning a [`State`]'s graph into a `pb::Definition`, as Go's
//! `State.Marshal` does.
//!
//! The walk is depth-first, inputs before the op that reads them (in each
//! op's [`Vertex::inputs`] order); each op object is encoded once, and each
//! distinct encoding (digest) appears once in `def`. The last entry is a
//! terminal op with no kind and one input: the output the state stands for.
//! Metadata is keyed by digest; ops that encode alike share one entry whose
//! capabilities are the union of theirs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::proto::pb;

use super::state::{default_platform, normalize_platform, Location, Output, SourceMap, State};
use super::MarshalError;

/// Settings for the whole graph at marshal time (Go's marshal-time
/// `ConstraintsOpt`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarshalOptions {
    /// The platform of ops that set none; Go uses the client machine's.
    pub platform: pb::Platform,
}

impl Default for MarshalOptions {
    fn default() -> Self {
        MarshalOptions { platform: default_platform() }
    }
}

/// `sha256:<hex>` of `bytes`: how LLB names an op.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An op's bytes in Go's field order.
///
/// Go's protobuf runtime writes a message's oneof fields after its other
/// fields ("to preserve compatibility with historic wire output"), while prost
/// writes every field in tag order. For `Op` that moves the op kind (tags
/// 2-8) behind `platform` (10) and `constraints` (11). Both orders decode the
/// same, but an op's digest is the hash of its bytes, so only Go's order gives
/// Go's digests. `Op` is the only message in the LLB schema where the two
/// orders differ (`FileAction`'s oneof already has its highest tags and
/// `UserOpt` has nothing else), so it alone is encoded by hand.
pub(crate) fn encode_op(op: &pb::Op) -> Vec<u8> {
    use prost::encoding::message;
    let mut buf = Vec::with_capacity(op.encoded_len());
    for input in &op.inputs {
        message::encode(1, input, &mut buf);
    }
    if let Some(platform) = &op.platform {
        message::encode(10, platform, &mut buf);
    }
    if let Some(constraints) = &op.constraints {
        message::encode(11, constraints, &mut buf);
    }
    if let Some(kind) = &op.op {
        kind.encode(&mut buf);
    }
    buf
}

/// One encoded op.
#[derive(Debug, Clone)]
pub(crate) struct Marshalled {
    pub(crate) digest: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) metadata: pb::OpMetadata,
}

/// Encodes ops once each and hands out their digests as inputs.
///
/// Ops are remembered by identity (the `Arc`'s address): the graph outlives
/// the walk, so addresses stay valid and unique while it runs.
pub(crate) struct Marshaller {
    platform: pb::Platform,
    done: HashMap<usize, Marshalled>,
}

impl Marshaller {
    fn new(options: &MarshalOptions) -> Self {
        Marshaller { platform: normalize_platform(options.platform.clone()), done: HashMap::new() }
    }

    /// An op with Go's constraints filled in: the op's own platform, else
    /// the marshal-time one, and an empty (but present) worker-constraints
    /// message, which Go always encodes.
    pub(crate) fn base_op(&self, platform: Option<&pb::Platform>) -> pb::Op {
        pb::Op {
            platform: Some(platform.cloned().unwrap_or_else(|| self.platform.clone())),
            constraints: Some(pb::WorkerConstraints::default()),
            ..Default::default()
        }
    }

    /// The edge to `output`, encoding its op first if needed.
    pub(crate) fn input(&mut self, output: &Output) -> Result<pb::Input, MarshalError> {
        let marshalled = self.marshal(output)?;
        Ok(pb::Input { digest: marshalled.digest.clone(), index: output.index })
    }

    fn marshal(&mut self, output: &Output) -> Result<&Marshalled, MarshalError> {
        let id = output.vertex_id();
        if !self.done.contains_key(&id) {
            let (op, metadata) = output.vertex.to_op(self)?;
            let bytes = encode_op(&op);
            let marshalled = Marshalled { digest: digest_of(&bytes), bytes, metadata };
            self.done.insert(id, marshalled);
        }
        Ok(&self.done[&id])
    }
}

/// Go's `State.Marshal`.
pub(crate) fn marshal(state: &State, options: &MarshalOptions) -> Result<pb::Definition, MarshalError> {
    let Some(output) = &state.output else {
        // Scratch: nothing to build, and Go sends no terminal op either.
        return Ok(pb::Definition::default());
    };
    let mut walk = Walk {
        marshaller: Marshaller::new(options),
        visited: HashSet::new(),
        seen: HashSet::new(),
        def: Vec::new(),
        metadata: BTreeMap::new(),
        source: pb::Source::default(),
        maps: Vec::new(),
    };
    walk.visit(output)?;

    let terminal = encode_op(&pb::Op { inputs: vec![walk.marshaller.input(output)?], ..Default::default() });
    let terminal_digest = digest_of(&terminal);
    let mut caps: BTreeMap<String, bool> =
        [("constraints", true), ("platform", true)].into_iter().map(|(cap, on)| (cap.to_owned(), on)).collect();
    for metadata in walk.metadata.values() {
        if metadata.ignore_cache {
            caps.insert("meta.ignorecache".to_owned(), true);
        }
        if !metadata.description.is_empty() {
            caps.insert("meta.description".to_owned(), true);
        }
        if metadata.export_cache.is_some() {
            caps.insert("meta.exportcache".to_owned(), true);
        }
    }
    walk.metadata.entry(terminal_digest).or_default().caps.extend(caps);
    walk.def.push(terminal.into());

    Ok(pb::Definition {
        def: walk.def,
        metadata: walk.metadata,
        // Go's source map also lists every op it walked with an empty
        // `Locations` (here only ops with a location have an entry). Those entries must not be copied: prost leaves an
        // empty message out of a map entry (Go writes it as zero bytes), the
        // daemon then decodes the entry's value as nil, and buildkitd v0.32.2
        // dereferences it when an op with such an entry fails (`wrapError` in
        // solver/llbsolver/result.go) and crashes. Without the entry it finds
        // nothing, which is what an empty entry means anyway. Likewise every
        // metadata value above holds at least one capability, so none is
        // ever an empty message.
        source: Some(walk.source),
    })
}

/// Makes a definition that came from elsewhere (a daemon's answer, a
/// caller) safe to send: map entries whose value is an empty message are
/// removed, in the definition and in its source maps' definitions. prost
/// writes such an entry without its value, buildkitd decodes the value as
/// nil and v0.32.2 crashes on it (a frontend input's source map crashed
/// the daemon in `llb.NewDefinitionOp`); without the entry the daemon finds
/// nothing, which is what an empty entry means.
pub(crate) fn drop_empty_map_values(definition: &mut pb::Definition) {
    definition.metadata.retain(|_, metadata| *metadata != pb::OpMetadata::default());
    if let Some(source) = &mut definition.source {
        source.locations.retain(|_, locations| !locations.locations.is_empty());
        for info in &mut source.infos {
            if let Some(definition) = &mut info.definition {
                drop_empty_map_values(definition);
            }
        }
    }
}

struct Walk {
    marshaller: Marshaller,
    /// Ops already walked, by identity.
    visited: HashSet<usize>,
    /// Digests already in `def`.
    seen: HashSet<String>,
    def: Vec<bytes::Bytes>,
    metadata: BTreeMap<String, pb::OpMetadata>,
    /// Go's `sourceMapCollector`, marshalled as it goes.
    source: pb::Source,
    /// The map behind each of `source.infos`: an op that points into the
    /// same map object is found without comparing the file's bytes (every
    /// op of a Dockerfile points into one).
    maps: Vec<Arc<SourceMap>>,
}

impl Walk {
    /// Depth-first, inputs before the op that reads them, with a stack of
    /// its own: a graph of 10,000 steps in a chain is 10,000 levels deep,
    /// more than a thread's stack holds when each level is a call.
    fn visit(&mut self, root: &Output) -> Result<(), MarshalError> {
        // Each entry: an output, its inputs, and how many of them are done.
        let mut stack: Vec<(Output, Vec<Output>, usize)> = Vec::new();
        if !self.visited.contains(&root.vertex_id()) {
            stack.push((root.clone(), root.vertex.inputs(), 0));
        }
        while let Some((_, inputs, next)) = stack.last_mut() {
            if let Some(input) = inputs.get(*next).cloned() {
                *next += 1;
                if !self.visited.contains(&input.vertex_id()) {
                    let inputs = input.vertex.inputs();
                    stack.push((input, inputs, 0));
                }
                continue;
            }
            let (output, _, _) = stack.pop().expect("an entry");
            // Reached again through another path while it was pending.
            if self.visited.contains(&output.vertex_id()) {
                continue;
            }
            self.emit(&output)?;
        }
        Ok(())
    }

    /// Encodes `output`'s op (its inputs are done) into the definition.
    fn emit(&mut self, output: &Output) -> Result<(), MarshalError> {
        let marshalled = self.marshaller.marshal(output)?.clone();
        self.visited.insert(output.vertex_id());
        merge_metadata(self.metadata.entry(marshalled.digest.clone()).or_default(), &marshalled.metadata);
        if let Some(location) = output.vertex.location() {
            self.add_location(&marshalled.digest, location);
        }
        if self.seen.insert(marshalled.digest) {
            self.def.push(marshalled.bytes.into());
        }
        Ok(())
    }
}

impl Walk {
    /// Go's `sourceMapCollector.Add`: each distinct file (by content, as
    /// Go's `equalSourceMap` compares maps without a definition) becomes one
    /// info, in the order ops first point into it; locations are appended
    /// per op object, so two ops that encode alike both add theirs.
    fn add_location(&mut self, digest: &str, location: &Location) {
        let map = &location.source;
        let position = self.maps.iter().position(|known| Arc::ptr_eq(known, map) || **known == **map);
        let index = position.unwrap_or_else(|| {
            self.source.infos.push(pb::SourceInfo {
                filename: map.filename.clone(),
                language: map.language.clone(),
                data: map.data.clone().into(),
                definition: None,
            });
            self.maps.push(Arc::clone(map));
            self.source.infos.len() - 1
        });
        self.source
            .locations
            .entry(digest.to_owned())
            .or_default()
            .locations
            .push(pb::Location { source_index: index as i32, ranges: location.ranges.clone() });
    }
}

/// Go's `mergeMetadata`: flags and capabilities accumulate, later
/// descriptions and settings win.
fn merge_metadata(into: &mut pb::OpMetadata, from: &pb::OpMetadata) {
    into.ignore_cache |= from.ignore_cache;
    into.description.extend(from.description.iter().map(|(k, v)| (k.clone(), v.clone())));
    if from.export_cache.is_some() {
        into.export_cache = from.export_cache;
    }
    into.caps.extend(from.caps.keys().map(|cap| (cap.clone(), true)));
    if from.progress_group.is_some() {
        into.progress_group = from.progress_group.clone();
    }
    if from.linux_resources.is_some() {
        into.linux_resources = from.linux_resources.clone();
    }
}

impl State {
    /// The graph as a definition for `Control.Solve` or the gateway's Solve,
    /// with ops that set no platform built for the client machine's.
    pub fn marshal(&self) -> Result<pb::Definition, MarshalError> {
        marshal(self, &MarshalOptions::default())
    }

    /// [`State::marshal`] with explicit marshal-time settings.
    pub fn marshal_with(&self, options: &MarshalOptions) -> Result<pb::Definition, MarshalError> {
        marshal(self, options)
    }
}
