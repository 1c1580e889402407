//! The build's live progress: turns the daemon's `Control.Status` stream into
//! what people (or tools) read while a build runs, and the summary after it.
//!
//! - `model` folds `StatusResponse`s into the build's state (vertexes in
//!   start order, their runs, transfers, last log lines, warnings, errors).
//!   It does no I/O and reads no clock.
//! - Renderers draw the model into any [`Write`]: `plain` (buildctl's `#N`
//!   lines), `tty` (a live view redrawn in place), [`rawjson`] (buildctl's
//!   JSON lines); `quiet` draws nothing.
//! - `summary` writes the end: the failed steps' last log lines, the
//!   Dockerfile lines around the failure (from the solve error's
//!   [`BuildFailure`] details or an LLB definition's source map), the
//!   warnings, and one summary line (`Built in 12.3s: 14 steps, 9 cached (64%)`).
//!
//! [`ProgressWriter`] ties these together. A build reports to a
//! [`ProgressSink`] (the trait in `sink`): [`ProgressWriter`] is the sink
//! that draws for people; a program can implement the trait to collect the
//! status messages instead. [`drive`] follows a recorded stream to its end.

mod failure;
mod model;
mod plain;
pub mod rawjson;
mod sink;
mod summary;
mod tty;

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};

pub use failure::{write_source_context, BuildFailure, LineRange, SourceFile, SourceSnippet};
pub use rawjson::RawJsonError;
pub(crate) use sink::StepTracker;
pub use sink::{BuildEnd, NoProgress, ProgressSink};
pub use summary::Summary;

use crate::proto::moby::buildkit::v1::StatusResponse;
use crate::proto::pb;
use model::{Model, Ts};
use plain::PlainPrinter;
use summary::SourceContext;
use tty::{FrameSize, TtyDisplay};

/// The tty view redraws at most this often (BuildKit's rate too).
const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

/// How progress is shown: buildx's `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProgressMode {
    /// `tty` when stderr is a terminal, else `plain`.
    #[default]
    Auto,
    /// A live view redrawn in place.
    Tty,
    /// buildctl's numbered `#N` lines.
    Plain,
    /// buildctl's JSON lines, one status message each.
    RawJson,
    /// Nothing (`quiet` or `none`).
    Quiet,
}

/// A `--progress` value that is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown progress mode {0:?} (expected auto, tty, plain, rawjson, quiet or none)")]
pub struct ParseModeError(String);

impl FromStr for ProgressMode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(ProgressMode::Auto),
            "tty" => Ok(ProgressMode::Tty),
            "plain" => Ok(ProgressMode::Plain),
            "rawjson" => Ok(ProgressMode::RawJson),
            "quiet" | "none" => Ok(ProgressMode::Quiet),
            _ => Err(ParseModeError(s.to_string())),
        }
    }
}

impl fmt::Display for ProgressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgressMode::Auto => "auto",
            ProgressMode::Tty => "tty",
            ProgressMode::Plain => "plain",
            ProgressMode::RawJson => "rawjson",
            ProgressMode::Quiet => "quiet",
        })
    }
}

impl ProgressMode {
    /// The default mode: `BUILDKIT_PROGRESS` when set, else `auto`.
    pub fn from_env() -> Result<ProgressMode, ParseModeError> {
        match std::env::var("BUILDKIT_PROGRESS") {
            Ok(value) => value.parse(),
            Err(_) => Ok(ProgressMode::Auto),
        }
    }

    /// Settles `auto`; the other modes are what the user asked for.
    pub fn resolve(self, stderr_is_terminal: bool) -> ProgressMode {
        match self {
            ProgressMode::Auto if stderr_is_terminal => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            mode => mode,
        }
    }
}

/// Whether colour is wanted: not when `NO_COLOR` is set to anything
/// (<https://no-color.org>).
pub fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Why following the status stream stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProgressError {
    #[error("the daemon's build status stream failed")]
    Stream(#[source] tonic::Status),
}

/// The renderer chosen for the mode.
#[derive(Debug)]
enum Renderer {
    Tty(TtyDisplay),
    Plain(PlainPrinter),
    RawJson,
    Quiet,
}

/// Shows a build's progress on `W` and sums it up at the end.
///
/// Writing is best effort: when the output fails (a closed pipe) the build
/// goes on and the writer falls silent; [`ProgressWriter::write_error`]
/// tells what happened.
#[derive(Debug)]
pub struct ProgressWriter<W: Write> {
    out: W,
    mode: ProgressMode,
    renderer: Renderer,
    model: Model,
    sources: SourceContext,
    /// A fixed terminal size; otherwise the terminal is asked at each redraw.
    size: Option<(usize, usize)>,
    log_lines: usize,
    last_draw: Option<Instant>,
    /// Local clock minus daemon clock, learnt from the first started vertex,
    /// so running timers advance between status messages.
    clock_offset: Option<i64>,
    dirty: bool,
    write_error: Option<io::Error>,
    finished: bool,
    /// Warnings in full (detail, link, Dockerfile lines) rather than one line each.
    expand_warnings: bool,
    /// When the build started (the writer is made as it starts): the
    /// summary's duration counts from here. The daemon's timestamps alone
    /// say too little when a build is killed while a step is silent (the
    /// last timestamp may be seconds old).
    started: Instant,
}

impl<W: Write> ProgressWriter<W> {
    /// A writer for `mode`; `auto` is settled by whether stderr is a terminal
    /// (progress goes to stderr). Colour follows `NO_COLOR`.
    pub fn new(mode: ProgressMode, out: W) -> Self {
        let mode = mode.resolve(io::stderr().is_terminal());
        let renderer = match mode {
            ProgressMode::Tty | ProgressMode::Auto => Renderer::Tty(TtyDisplay::new(color_enabled())),
            ProgressMode::Plain => {
                Renderer::Plain(PlainPrinter::new(std::env::var("PROGRESS_NO_TRUNC").is_ok_and(|v| v == "0")))
            }
            ProgressMode::RawJson => Renderer::RawJson,
            ProgressMode::Quiet => Renderer::Quiet,
        };
        let log_lines = std::env::var("BUILDKIT_TTY_LOG_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(tty::DEFAULT_LOG_LINES);
        ProgressWriter {
            out,
            mode,
            renderer,
            model: Model::new(),
            sources: SourceContext::default(),
            size: None,
            log_lines,
            last_draw: None,
            clock_offset: None,
            dirty: false,
            write_error: None,
            finished: false,
            expand_warnings: false,
            started: Instant::now(),
        }
    }

    /// The build file as the caller read it, for failure context when the
    /// daemon's source information leaves the text out.
    pub fn with_dockerfile(mut self, file: SourceFile) -> Self {
        self.sources.file = Some(file);
        self
    }

    /// The source map of the LLB definition being solved (op digest to
    /// Dockerfile lines), so a failed step can show its lines even when the
    /// solve error carries none.
    pub fn with_definition_source(mut self, source: &pb::Source) -> Self {
        self.sources.add_definition_source(source);
        self
    }

    /// Prints warnings in full at the end (`-v`), not one line each.
    pub fn with_expanded_warnings(mut self, expand: bool) -> Self {
        self.expand_warnings = expand;
        self
    }

    /// Forces colour on or off in the tty view.
    pub fn with_color(mut self, color: bool) -> Self {
        if let Renderer::Tty(_) = self.renderer {
            self.renderer = Renderer::Tty(TtyDisplay::new(color));
        }
        self
    }

    /// Draws the tty view for a terminal of this size instead of asking the terminal.
    pub fn with_terminal_size(mut self, width: usize, height: usize) -> Self {
        self.size = Some((width, height));
        self
    }

    /// The mode in use (`auto` already settled).
    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// The first error writing the output, if any.
    pub fn write_error(&self) -> Option<&io::Error> {
        self.write_error.as_ref()
    }

    /// The output, back from the writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Takes in one status message and shows it.
    pub fn update(&mut self, status: &StatusResponse) {
        let changes = self.model.apply(status);
        if self.clock_offset.is_none() {
            if let Some(first) = self.model.first_start() {
                self.clock_offset = Some(local_nanos().saturating_sub(first.0));
            }
        }
        let result = match &mut self.renderer {
            Renderer::Quiet => Ok(()),
            Renderer::RawJson => rawjson::write_line(&mut self.out, status).and_then(|()| self.out.flush()),
            Renderer::Plain(printer) => {
                printer.update(&self.model, &changes, &mut self.out).and_then(|()| self.out.flush())
            }
            Renderer::Tty(_) => {
                self.dirty = true;
                self.redraw_if_due()
            }
        };
        self.note(result);
    }

    /// Prints a warning of the client's own (`WARNING: ...`) on a line of
    /// its own, in every mode. In rawjson it is a status line of its own
    /// (a warning of no vertex), so the stream stays JSON lines only.
    pub fn warn(&mut self, message: &str) {
        let result = match self.renderer {
            Renderer::RawJson => {
                let status = StatusResponse {
                    warnings: vec![crate::proto::moby::buildkit::v1::VertexWarning {
                        level: 1,
                        short: bytes::Bytes::copy_from_slice(message.as_bytes()),
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                rawjson::write_line(&mut self.out, &status)
            }
            _ => writeln!(self.out, "WARNING: {message}"),
        }
        .and_then(|()| self.out.flush());
        self.note(result);
    }

    /// Lets the tty view advance its timers and the plain printer print what
    /// it has gathered; call it about every 100 ms (see [`ProgressWriter::follow`]).
    pub fn tick(&mut self) {
        let result = match &mut self.renderer {
            Renderer::Tty(_) => {
                self.dirty = true;
                self.redraw_if_due()
            }
            Renderer::Plain(printer) => printer.tick(&self.model, &mut self.out).and_then(|()| self.out.flush()),
            Renderer::RawJson | Renderer::Quiet => Ok(()),
        };
        self.note(result);
    }

    /// Feeds the status stream in until it ends, redrawing the tty view on
    /// time. A failed stream ends the loop with its error; the state so far
    /// is kept, so [`ProgressWriter::finish`] still reports it.
    pub async fn follow<S>(&mut self, stream: S) -> Result<(), ProgressError>
    where
        S: Stream<Item = Result<StatusResponse, tonic::Status>>,
    {
        let mut stream = std::pin::pin!(stream);
        let mut ticker = tokio::time::interval(REDRAW_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let live = matches!(self.renderer, Renderer::Tty(_) | Renderer::Plain(_));
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(status)) => self.update(&status),
                    Some(Err(status)) => return Err(ProgressError::Stream(status)),
                    None => return Ok(()),
                },
                _ = ticker.tick(), if live => self.tick(),
            }
        }
    }

    /// Ends the output: the final view, what failed and where, the
    /// warnings, and the summary line (quiet mode prints nothing). Pass the
    /// solve's outcome; its error details locate the failure in the
    /// Dockerfile. Calling it twice prints once.
    pub fn finish<T>(&mut self, outcome: &Result<T, BuildFailure>) -> Summary {
        let failure = outcome.as_ref().err();
        let summary = self.summary(failure.is_some());
        if std::mem::replace(&mut self.finished, true) {
            return summary;
        }
        let result = self.write_end(failure, &summary);
        self.note(result);
        summary
    }

    /// Ends the output of a build replayed from the daemon's history
    /// (`fbuild history logs`): the final view, the failed steps' last lines
    /// and the warnings, and no summary line, as `buildx history logs` ends.
    pub fn finish_replay(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let end = self.model.latest().unwrap_or(Ts(0));
        let size = self.frame_size(false);
        let result = match &mut self.renderer {
            Renderer::Quiet | Renderer::RawJson => self.out.flush(),
            Renderer::Plain(printer) => printer.flush(&self.model, &mut self.out),
            Renderer::Tty(display) => display.draw(&mut self.out, &tty::frame(&self.model, end, size, true)),
        };
        let result = result.and_then(|()| match self.renderer {
            Renderer::Plain(_) | Renderer::Tty(_) => {
                summary::write_report(&mut self.out, &self.model, None, &self.sources, self.expand_warnings)
                    .and_then(|()| self.out.flush())
            }
            Renderer::Quiet | Renderer::RawJson => Ok(()),
        });
        self.note(result);
    }

    /// Ends the output of a build the user cancelled.
    pub fn finish_cancelled(&mut self) -> Summary {
        if !self.finished && matches!(self.renderer, Renderer::Plain(_) | Renderer::Tty(_)) {
            let status = self.model.cancel_running(self.daemon_now());
            if !status.vertexes.is_empty() {
                self.update(&status);
            }
        }
        let summary = Summary { canceled: true, ..self.summary(true) };
        if std::mem::replace(&mut self.finished, true) {
            return summary;
        }
        let result = self.write_end(None, &summary);
        self.note(result);
        summary
    }

    /// The summary, its duration counted from the start of the build: at
    /// least the span the daemon's timestamps show, at least the time since
    /// this writer was made.
    fn summary(&self, failed: bool) -> Summary {
        let summary = Summary::from_model(&self.model, failed);
        Summary { duration: summary.duration.max(self.started.elapsed()), ..summary }
    }

    fn write_end(&mut self, failure: Option<&BuildFailure>, summary: &Summary) -> io::Result<()> {
        let end = self.model.latest().unwrap_or(Ts(0));
        let size = self.frame_size(false);
        match &mut self.renderer {
            // Quiet still says what failed and where: the error alone would
            // lose the step's log and the Dockerfile lines (buildx prints
            // them with -q too).
            Renderer::Quiet => {
                if failure.is_some() && self.write_error.is_none() {
                    summary::write_failure(&mut self.out, &self.model, failure, &self.sources)?;
                    self.out.flush()?;
                }
                return Ok(());
            }
            // JSON lines only: the summary is for people (buildx too adds
            // nothing after its rawjson stream).
            Renderer::RawJson => return self.out.flush(),
            Renderer::Plain(printer) => printer.flush(&self.model, &mut self.out)?,
            Renderer::Tty(display) => {
                let lines = tty::frame(&self.model, end, size, true);
                display.draw(&mut self.out, &lines)?;
            }
        }
        summary::write_report(&mut self.out, &self.model, failure, &self.sources, self.expand_warnings)?;
        writeln!(self.out, "{summary}")?;
        self.out.flush()
    }

    /// The terminal's (width, height): the fixed size, else asked anew at
    /// each frame so a resized window redraws to fit, else 80x24.
    fn terminal_size(&self) -> (usize, usize) {
        if let Some(size) = self.size {
            return size;
        }
        // One TIOCGWINSZ ioctl on stdout, stderr or stdin, whichever is a
        // terminal: no process is spawned ten times a second.
        match terminal_size::terminal_size() {
            Some((terminal_size::Width(columns), terminal_size::Height(rows))) if columns > 0 && rows > 0 => {
                (usize::from(columns), usize::from(rows))
            }
            _ => (80, 24),
        }
    }

    /// The size of a frame: a live one is cut to the terminal's height, the
    /// final one is drawn whole.
    fn frame_size(&self, live: bool) -> FrameSize {
        let (width, height) = self.terminal_size();
        FrameSize { width, height: live.then_some(height), log_lines: self.log_lines }
    }

    fn redraw_if_due(&mut self) -> io::Result<()> {
        if !self.dirty || self.last_draw.is_some_and(|t| t.elapsed() < REDRAW_INTERVAL) {
            return Ok(());
        }
        let size = self.frame_size(true);
        let now = self.daemon_now();
        let Renderer::Tty(display) = &mut self.renderer else {
            return Ok(());
        };
        let lines = tty::frame(&self.model, now, size, false);
        self.last_draw = Some(Instant::now());
        self.dirty = false;
        display.draw(&mut self.out, &lines)
    }

    /// The daemon's "now", from the local clock and the offset learnt at the
    /// first start; never before the latest time the daemon reported.
    fn daemon_now(&self) -> Ts {
        let latest = self.model.latest().unwrap_or(Ts(0));
        match self.clock_offset {
            Some(offset) => Ts(local_nanos().saturating_sub(offset)).max(latest),
            None => latest,
        }
    }

    fn note(&mut self, result: io::Result<()>) {
        if let Err(e) = result {
            // Progress is best effort; stop writing but keep the build going.
            self.write_error.get_or_insert(e);
            self.renderer = Renderer::Quiet;
        }
    }
}

fn local_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Shows the status stream on `out` in `mode` until it ends and returns the
/// summary. `dockerfile` is the build file's (name, text). Without the
/// solve's error in hand, a build counts as failed when a step failed or was
/// cancelled, and the failure is told from the steps.
pub async fn drive<S, W>(
    mode: ProgressMode,
    stream: S,
    out: W,
    dockerfile: Option<(String, String)>,
) -> Result<Summary, ProgressError>
where
    S: Stream<Item = Result<StatusResponse, tonic::Status>>,
    W: Write + Send,
{
    let mut writer = ProgressWriter::new(mode, out);
    if let Some((name, text)) = dockerfile {
        writer = writer.with_dockerfile(SourceFile::new(name, text));
    }
    let followed = writer.follow(stream).await;
    let failed = writer.model.shown().find(|(_, v)| !v.error.is_empty()).map(|(_, v)| BuildFailure {
        message: v.error.clone(),
        vertex: Some(v.digest.clone()),
        sources: Vec::new(),
    });
    let outcome = match (failed, &followed) {
        (Some(failure), _) => Err(failure),
        (None, Err(e)) => Err(BuildFailure::new(e.to_string())),
        (None, Ok(())) => Ok(()),
    };
    let summary = writer.finish(&outcome);
    followed.map(|()| summary)
}

#[cfg(test)]
mod tests;
