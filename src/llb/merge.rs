//! Merge ops: several filesystems stacked into one, later inputs over
//! earlier ones, without copying (Go's `merge.go`).

use std::sync::Arc;

use crate::proto::pb;

use super::marshal::Marshaller;
use super::state::{Location, OpOptions, Output, State, Vertex};
use super::MarshalError;

/// The filesystems of `inputs` merged, later ones winning where paths
/// collide (Go's `llb.Merge`). Scratch inputs add nothing and are dropped
/// first; with nothing left the result is scratch, and with one input left
/// it is that input itself (no op). Otherwise the result keeps the first
/// input's settings (directory, environment, ...).
pub fn merge(inputs: &[State], options: OpOptions) -> State {
    let inputs: Vec<&State> = inputs.iter().filter(|state| !state.is_scratch()).collect();
    match inputs.as_slice() {
        [] => super::scratch(),
        [only] => State::clone(only),
        [first, ..] => {
            let op = MergeOp { inputs: inputs.iter().filter_map(|state| state.output.clone()).collect(), options };
            first.with_output(Some(Output::new(Arc::new(op), 0)))
        }
    }
}

#[derive(Debug)]
struct MergeOp {
    /// At least two, none scratch.
    inputs: Vec<Output>,
    options: OpOptions,
}

impl Vertex for MergeOp {
    fn inputs(&self) -> Vec<Output> {
        self.inputs.clone()
    }

    fn take_inputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.inputs)
    }

    fn location(&self) -> Option<&Location> {
        self.options.location.as_ref()
    }

    fn to_op(&self, marshaller: &mut Marshaller) -> Result<(pb::Op, pb::OpMetadata), MarshalError> {
        let mut op = marshaller.base_op(None);
        // Merging does the same on every platform.
        op.platform = None;
        let mut merge = pb::MergeOp::default();
        // One input per merged filesystem, even when two are the same (Go
        // does not collapse them here, unlike exec and file ops).
        for output in &self.inputs {
            merge.inputs.push(pb::MergeInput { input: op.inputs.len() as i64 });
            op.inputs.push(marshaller.input(output)?);
        }
        op.op = Some(pb::op::Op::Merge(merge));
        Ok((op, self.options.metadata(&["mergeop"])))
    }
}
