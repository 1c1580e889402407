//! Rendering of errors for people: `error: …`, one `Caused by: …` line per
//! cause, then `hint: …` lines. Library modules own `thiserror` enums whose
//! message names the failed operation and whose `#[source]` holds the cause;
//! this module is the only place that turns a chain into text.

use std::io::Write;

/// An error that knows what the user can do about it.
///
/// Wrap any error with [`Hinted::wrap`]; the renderer prints the hints
/// after the cause chain.
#[derive(Debug)]
pub struct Hinted {
    pub error: anyhow::Error,
    pub hints: Vec<String>,
}

impl Hinted {
    /// `error` with `hints` for the renderer, or `error` alone when there are none.
    pub fn wrap(error: impl Into<anyhow::Error>, hints: Vec<String>) -> anyhow::Error {
        let error = error.into();
        if hints.is_empty() {
            error
        } else {
            anyhow::Error::new(Hinted { error, hints })
        }
    }
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Writes `error:`, `Caused by:` and `hint:` lines for `err`.
pub fn render(err: &anyhow::Error, out: &mut dyn Write) {
    let mut hints = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    for cause in err.chain() {
        if let Some(hinted) = cause.downcast_ref::<Hinted>() {
            // The wrapper displays as its inner error, and the inner error's
            // causes follow it in the chain, so it needs no line of its own.
            hints.extend(hinted.hints.iter().cloned());
        }
        let text = cause.to_string();
        // tonic and hyper often repeat their cause inside their own message;
        // skip a cause whose text the previous line already carries.
        if lines.last().is_some_and(|prev| prev.contains(&text)) {
            continue;
        }
        lines.push(text);
    }
    if lines.is_empty() {
        lines.push(err.to_string());
    }
    let _ = writeln!(out, "error: {}", lines[0]);
    for cause in &lines[1..] {
        let _ = writeln!(out, "  Caused by: {cause}");
    }
    for hint in hints {
        let _ = writeln!(out, "hint: {hint}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chain_and_hints() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = Hinted::wrap(
            anyhow::Error::from(io).context("cannot connect to buildkitd at unix:///run/buildkit/buildkitd.sock"),
            vec!["start one with `fbuild daemon start`".into()],
        );
        let mut out = Vec::new();
        render(&err, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "error: cannot connect to buildkitd at unix:///run/buildkit/buildkitd.sock\n  Caused by: connection refused\nhint: start one with `fbuild daemon start`\n"
        );
    }
}

/// An error and its causes on one line (`what failed: why: why`), for the
/// places that hand an error to someone else as text: a gRPC status sent to
/// the daemon, a log line. A cause whose text is already there is skipped
/// (tonic and hyper often repeat their cause in their own message).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The build or command was cancelled by the user (Ctrl-C); exits 130 like a shell.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// A write to our own standard output failed because the reader went away
/// (`fbuild du | head`). Only [`crate::printer::Printer::stdout`] makes it,
/// so a broken pipe anywhere else (a daemon closing its connection) is
/// still an error.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct StdoutClosed;

/// True when the chain holds a write to our standard output that failed
/// because the reader closed it.
pub fn is_stdout_closed(err: &anyhow::Error) -> bool {
    // The marker travels inside the io::Error (whose `source()` skips it).
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

/// The exit code for a failed run: 130 when cancelled, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> std::process::ExitCode {
    if err.chain().any(|cause| cause.is::<Cancelled>()) {
        std::process::ExitCode::from(130)
    } else {
        std::process::ExitCode::FAILURE
    }
}
