//! `--call` / `--check`: a frontend subrequest instead of a build. As buildx
//! does, the Dockerfile frontend runs through the gateway (a client-side
//! frontend that asks the daemon's `dockerfile.v0` with
//! `requestid=frontend.NAME`), because the answer is the result's metadata
//! (`result.json`, `result.txt`, `result.statuscode`), which `Control.Solve`
//! does not hand back. The answer is printed the way buildx's `printResult`
//! prints it (`commands/build.go`), on stdout.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use super::flags::CallFunc;
use crate::gateway::{ClientFrontend, FrontendError, FrontendOutput, Gateway};

/// The client-side frontend of a subrequest: one gateway solve of the daemon
/// frontend, whose metadata it keeps; it returns an empty result.
pub(crate) struct CallFrontend {
    frontend: String,
    attrs: BTreeMap<String, String>,
    answer: Mutex<Option<BTreeMap<String, Vec<u8>>>>,
}

impl CallFrontend {
    pub(crate) fn new(frontend: String, attrs: BTreeMap<String, String>) -> Self {
        CallFrontend { frontend, attrs, answer: Mutex::new(None) }
    }

    /// The frontend's metadata, once the build has run.
    pub(crate) fn answer(&self) -> BTreeMap<String, String> {
        let answer = self.answer.lock().map(|a| a.clone()).unwrap_or_default().unwrap_or_default();
        answer.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect()
    }
}

#[tonic::async_trait]
impl ClientFrontend for CallFrontend {
    async fn build(&self, gateway: &Gateway) -> Result<FrontendOutput, FrontendError> {
        let metadata = gateway.solve_frontend(&self.frontend, self.attrs.clone()).await?;
        if let Ok(mut answer) = self.answer.lock() {
            *answer = Some(metadata);
        }
        Ok(FrontendOutput::default())
    }
}

/// A lint run that found an error (a Dockerfile that cannot be built):
/// the frontend's message and where.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CheckFailed(String);

#[derive(serde::Deserialize, Default)]
struct LintResults {
    #[serde(default)]
    warnings: Vec<serde_json::Value>,
    #[serde(default)]
    sources: Vec<LintSource>,
    #[serde(default)]
    error: Option<LintError>,
}

#[derive(serde::Deserialize, Default)]
struct LintSource {
    #[serde(default, rename = "fileName")]
    file_name: String,
}

#[derive(serde::Deserialize)]
struct LintError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    location: Option<LintLocation>,
}

#[derive(serde::Deserialize)]
struct LintLocation {
    #[serde(default, rename = "sourceIndex")]
    source_index: i64,
    #[serde(default)]
    ranges: Vec<LintRange>,
}

#[derive(serde::Deserialize)]
struct LintRange {
    start: LintPosition,
}

#[derive(serde::Deserialize)]
struct LintPosition {
    #[serde(default)]
    line: i64,
}

/// Prints `answer` for `call` on `out`; the exit code buildx would use
/// (the frontend's `result.statuscode` unless `ignorestatus`), or the check's
/// error.
pub(crate) fn print(
    out: &mut dyn Write,
    call: &CallFunc,
    answer: &BTreeMap<String, String>,
) -> anyhow::Result<u8> {
    let json = call.format.as_deref() == Some("json");
    let text_or_json = |out: &mut dyn Write| -> std::io::Result<()> {
        match (json, answer.get("result.txt"), answer.get("result.json")) {
            (true, _, Some(result)) => writeln!(out, "{result}"),
            (_, Some(text), _) => write!(out, "{text}"),
            (_, None, Some(result)) => writeln!(out, "{result}"),
            (_, None, None) => writeln!(out, "{} {answer:?}", call.name),
        }
    };
    if call.name == "lint" {
        let results: LintResults = match answer.get("result.json") {
            Some(result) => serde_json::from_str(result)?,
            None => LintResults::default(),
        };
        let count = results.warnings.len();
        if !json && count > 0 {
            let found = if count == 1 { "1 warning has been found!".to_string() } else { format!("{count} warnings have been found!") };
            writeln!(out, "Check complete, {found}")?;
        }
        text_or_json(out)?;
        if let Some(error) = results.error {
            if !json && count > 0 {
                writeln!(out)?;
            }
            let mut message = error.message;
            if let Some(location) = error.location {
                let file = usize::try_from(location.source_index)
                    .ok()
                    .and_then(|i| results.sources.get(i))
                    .map(|s| s.file_name.clone())
                    .unwrap_or_else(|| "Dockerfile".into());
                if let Some(range) = location.ranges.first() {
                    message.push_str(&format!("\n{file}:{}", range.start.line));
                }
            }
            out.flush()?;
            return Err(CheckFailed(message).into());
        } else if count == 0 && !json {
            writeln!(out, "Check complete, no warnings found.")?;
        }
    } else {
        text_or_json(out)?;
    }
    out.flush()?;
    let status = answer.get("result.statuscode").and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(0);
    if status != 0 && !call.ignore_status {
        return Ok(u8::try_from(status).unwrap_or(1));
    }
    Ok(0)
}
