//! One display for every target: each build gets a [`TargetSink`] that
//! labels its steps with the target's name (`[app] [deps 2/3] RUN ...`)
//! and feeds one shared [`ProgressWriter`]. Vertex digests are left as the
//! daemon sent them, as buildx does: a step two targets share is one step
//! of the daemon's, shown once.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::progress::{BuildEnd, ProgressSink, ProgressWriter};
use crate::proto::moby::buildkit::v1::StatusResponse;

/// The writer every target's sink draws on.
pub(crate) type SharedWriter<W> = Arc<Mutex<ProgressWriter<W>>>;

pub(crate) struct TargetSink<W: Write + Send> {
    prefix: String,
    writer: SharedWriter<W>,
}

impl<W: Write + Send> TargetSink<W> {
    pub(crate) fn new(target: &str, writer: SharedWriter<W>) -> Self {
        TargetSink { prefix: format!("[{target}] "), writer }
    }

    fn with_writer(&self, f: impl FnOnce(&mut ProgressWriter<W>)) {
        // A panic elsewhere while drawing must not silence the other targets.
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut writer);
    }
}

impl<W: Write + Send> ProgressSink for TargetSink<W> {
    fn on_status(&mut self, status: &StatusResponse) {
        let mut status = status.clone();
        for vertex in &mut status.vertexes {
            if !vertex.name.starts_with(&self.prefix) {
                vertex.name.insert_str(0, &self.prefix);
            }
        }
        self.with_writer(|w| w.update(&status));
    }

    fn on_tick(&mut self) {
        self.with_writer(|w| w.tick());
    }

    fn on_warning(&mut self, message: &str) {
        let message = format!("{}{message}", self.prefix);
        self.with_writer(|w| w.warn(&message));
    }

    /// The shared display ends once, when every target has (the bake
    /// command finishes the writer).
    fn on_end(&mut self, _: BuildEnd<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::ProgressMode;
    use crate::proto::moby::buildkit::v1::Vertex;

    #[test]
    fn labels_steps_with_the_target() {
        let writer = Arc::new(Mutex::new(ProgressWriter::new(ProgressMode::RawJson, Vec::new())));
        let mut sink = TargetSink::new("app", writer.clone());
        let status = StatusResponse {
            vertexes: vec![Vertex { digest: "sha256:1".into(), name: "[deps 1/2] RUN x".into(), ..Default::default() }],
            ..Default::default()
        };
        sink.on_status(&status);
        drop(sink);
        let out = Arc::try_unwrap(writer).unwrap().into_inner().unwrap().into_inner();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("[app] [deps 1/2] RUN x"), "{out}");
    }

    #[test]
    fn labelled_bookkeeping_is_not_a_step() {
        let writer = Arc::new(Mutex::new(ProgressWriter::new(ProgressMode::Quiet, Vec::new())));
        let mut sink = TargetSink::new("app", writer.clone());
        let started = Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 });
        let vertex = |digest: &str, name: &str| Vertex {
            digest: digest.into(),
            name: name.into(),
            started,
            completed: started,
            ..Default::default()
        };
        sink.on_status(&StatusResponse {
            vertexes: vec![vertex("sha256:1", "[1/1] RUN x"), vertex("sha256:2", "exporting to image")],
            ..Default::default()
        });
        drop(sink);
        let summary = writer.lock().unwrap().finish(&Ok::<(), crate::progress::BuildFailure>(()));
        assert_eq!(summary.steps, 1, "{summary:?}");
    }
}
