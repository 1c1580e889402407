//! Diff ops: what changed from one filesystem to another, as a filesystem
//! of its own (Go's `diff.go`).

use std::sync::Arc;

use crate::proto::pb;

use super::marshal::Marshaller;
use super::state::{Location, OpOptions, Output, State, Vertex};
use super::MarshalError;

/// The changes that turn `lower` into `upper` (Go's `llb.Diff`). From
/// scratch the changes are all of `upper`, so that is returned as is (no
/// op); otherwise the result keeps `lower`'s settings. Deletions are kept
/// as whiteouts when the result is exported or merged.
pub fn diff(lower: &State, upper: &State, options: OpOptions) -> State {
    if lower.is_scratch() {
        return upper.clone();
    }
    let op = DiffOp { lower: lower.output.clone(), upper: upper.output.clone(), options };
    lower.with_output(Some(Output::new(Arc::new(op), 0)))
}

#[derive(Debug)]
struct DiffOp {
    lower: Option<Output>,
    /// `None`: scratch, the diff of deleting everything.
    upper: Option<Output>,
    options: OpOptions,
}

impl Vertex for DiffOp {
    fn inputs(&self) -> Vec<Output> {
        self.lower.iter().chain(&self.upper).cloned().collect()
    }

    fn take_inputs(&mut self) -> Vec<Output> {
        self.lower.take().into_iter().chain(self.upper.take()).collect()
    }

    fn location(&self) -> Option<&Location> {
        self.options.location.as_ref()
    }

    fn to_op(&self, marshaller: &mut Marshaller) -> Result<(pb::Op, pb::OpMetadata), MarshalError> {
        let mut op = marshaller.base_op(None);
        // Diffing does the same on every platform.
        op.platform = None;
        // Each side is its own input (even when both are one output), or
        // -1 for scratch.
        let mut side = |output: &Option<Output>, op: &mut pb::Op| -> Result<i64, MarshalError> {
            match output {
                Some(output) => {
                    op.inputs.push(marshaller.input(output)?);
                    Ok(op.inputs.len() as i64 - 1)
                }
                None => Ok(-1),
            }
        };
        let lower = side(&self.lower, &mut op)?;
        let upper = side(&self.upper, &mut op)?;
        op.op = Some(pb::op::Op::Diff(pb::DiffOp {
            lower: Some(pb::LowerDiffInput { input: lower }),
            upper: Some(pb::UpperDiffInput { input: upper }),
        }));
        Ok((op, self.options.metadata(&["diffop"])))
    }
}
