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
    /// The Dockerfile's text and `.dockerignore` patterns, when `check` may
    /// be answered by the native linter (`--frontend auto|native`).
    native: Option<(String, Vec<String>)>,
}

impl CallFrontend {
    pub(crate) fn new(frontend: String, attrs: BTreeMap<String, String>) -> Self {
        CallFrontend { frontend, attrs, answer: Mutex::new(None), native: None }
    }

    /// Answers `check` natively (the daemon's frontend still answers the
    /// other calls, and `check` where the linter cannot: `# syntax=`,
    /// named contexts).
    pub(crate) fn with_native_lint(mut self, dockerfile: String, excludes: Vec<String>) -> Self {
        self.native = Some((dockerfile, excludes));
        self
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
        let native = match &self.native {
            Some((dockerfile, excludes))
                if self.attrs.get("requestid").is_some_and(|id| id == "frontend.lint") && !dockerfile.is_empty() =>
            {
                match crate::dockerfile::frontend::check(gateway, dockerfile, excludes, &self.attrs).await {
                    Ok(answer) => Some(answer),
                    Err(reason) => {
                        tracing::debug!(%reason, "the daemon's frontend answers the check");
                        None
                    }
                }
            }
            _ => None,
        };
        let metadata = match native {
            Some(answer) => answer,
            None => gateway.solve_frontend(&self.frontend, self.attrs.clone()).await?,
        };
        if let Ok(mut answer) = self.answer.lock() {
            *answer = Some(metadata);
        }
        Ok(FrontendOutput::default())
    }
}

/// A lint run that found an error (a Dockerfile that cannot be built):
/// the frontend's message and where.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CheckFailed {
    message: String,
    /// The message ends with the Dockerfile's lines around the error.
    with_source: bool,
}

impl CheckFailed {
    /// The error as buildx's `printResult` returns it: the source lines
    /// end with a newline (buildx bake prints it as it is).
    pub(crate) fn go_text(error: &anyhow::Error) -> String {
        match error.downcast_ref::<CheckFailed>() {
            Some(failed) if failed.with_source => format!("{}\n", failed.message),
            _ => error.to_string(),
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct LintResults {
    // Go writes an empty list as null.
    #[serde(default)]
    warnings: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    sources: Option<Vec<LintSource>>,
    #[serde(default, rename = "buildError")]
    error: Option<LintError>,
}

/// BuildKit's `pb.SourceInfo` as Go's encoding/json writes it.
#[derive(serde::Deserialize, Default)]
struct LintSource {
    #[serde(default)]
    filename: String,
    /// The file's text, base64.
    #[serde(default)]
    data: String,
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
    #[serde(default)]
    end: Option<LintPosition>,
}

#[derive(serde::Deserialize)]
struct LintPosition {
    #[serde(default)]
    line: i64,
}

/// Prints `answer` for `call` on `out`; the exit code buildx would use
/// (the frontend's `result.statuscode` unless `ignorestatus`), or the check's
/// error.
///
/// `dockerfile` is (the name the frontend read, the path the user knows it
/// by): lint results name the Dockerfile the way buildx does, by the user's
/// path (its `DockerfileMappingSrc`).
pub(crate) fn print(
    out: &mut dyn Write,
    call: &CallFunc,
    answer: &BTreeMap<String, String>,
    dockerfile: (&str, &str),
) -> anyhow::Result<u8> {
    let json = call.format.as_deref() == Some("json");
    let text_or_json = |out: &mut dyn Write| -> std::io::Result<()> {
        match (json, answer.get("result.txt"), answer.get("result.json")) {
            (true, _, Some(result)) => writeln!(out, "{result}"),
            (_, Some(text), _) if call.name == "lint" => write!(out, "{}", map_source_names(text, dockerfile)),
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
        let count = results.warnings.as_ref().map_or(0, Vec::len);
        let sources = results.sources.unwrap_or_default();
        if !json && count > 0 {
            let found = if count == 1 {
                "1 warning has been found!".to_string()
            } else {
                format!("{count} warnings have been found!")
            };
            writeln!(out, "Check complete, {found}")?;
        }
        text_or_json(out)?;
        if let Some(error) = results.error {
            if !json && count > 0 {
                writeln!(out)?;
            }
            // The message, then the lines (buildx's PrintErrorTo).
            let mut message = error.message;
            let mut with_source = false;
            if let Some(location) = error.location {
                let source = usize::try_from(location.source_index).ok().and_then(|i| sources.get(i));
                let file = source.map_or(dockerfile.0, |s| s.filename.as_str());
                let filename = if file == dockerfile.0 { dockerfile.1 } else { file };
                let text = source
                    .and_then(|s| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &s.data).ok())
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default();
                let ranges = location
                    .ranges
                    .iter()
                    .map(|r| crate::progress::LineRange {
                        start: r.start.line as i32,
                        end: r.end.as_ref().map_or(r.start.line, |e| e.line) as i32,
                    })
                    .collect();
                let snippet = crate::progress::SourceSnippet { filename: filename.to_owned(), text, ranges };
                let mut lines = Vec::new();
                crate::progress::write_source_context(&mut lines, &snippet)?;
                if lines.is_empty() {
                    if let Some(range) = location.ranges.first() {
                        message.push_str(&format!("\n{filename}:{}", range.start.line));
                    }
                } else {
                    message.push('\n');
                    message.push_str(String::from_utf8_lossy(&lines).trim_end());
                    with_source = true;
                }
            }
            out.flush()?;
            return Err(CheckFailed { message, with_source }.into());
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

/// Replaces the `NAME:LINE` lines that open each source excerpt (BuildKit's
/// `errdefs.Source.Print`) with the user's path for the Dockerfile.
fn map_source_names(text: &str, (name, path): (&str, &str)) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        match body.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')) {
            Some(number) if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                out.push_str(&format!("{path}:{number}{}", &line[body.len()..]));
            }
            _ => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str) -> CallFunc {
        CallFunc { name: name.into(), format: None, ignore_status: false }
    }

    fn printed(call: &CallFunc, answer: &[(&str, &str)]) -> (String, anyhow::Result<u8>) {
        let answer: BTreeMap<String, String> = answer.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut out = Vec::new();
        let code = print(&mut out, call, &answer, ("Dockerfile", "ctx/Dockerfile"));
        (String::from_utf8(out).unwrap(), code)
    }

    #[test]
    fn lint_prints_as_buildx() {
        let json =
            r#"{"warnings":[{"ruleName":"FromAsCasing"},{"ruleName":"X"}],"sources":[{"filename":"Dockerfile"}]}"#;
        let text = "\nWARNING: FromAsCasing\nDockerfile:1\n---\n";
        let (out, code) =
            printed(&call("lint"), &[("result.json", json), ("result.txt", text), ("result.statuscode", "1")]);
        assert_eq!(
            out,
            "Check complete, 2 warnings have been found!\n\nWARNING: FromAsCasing\nctx/Dockerfile:1\n---\n"
        );
        assert_eq!(code.unwrap(), 1);

        let (out, code) = printed(
            &call("lint"),
            &[("result.json", r#"{"warnings":null,"sources":null}"#), ("result.txt", ""), ("result.statuscode", "0")],
        );
        assert_eq!(out, "Check complete, no warnings found.\n");
        assert_eq!(code.unwrap(), 0);

        let mut ignore = call("lint");
        ignore.ignore_status = true;
        let (_, code) = printed(&ignore, &[("result.json", json), ("result.statuscode", "1")]);
        assert_eq!(code.unwrap(), 0);

        // "FROM scratch\nFORM x\n"
        let failing = r#"{"sources":[{"filename":"Dockerfile","data":"RlJPTSBzY3JhdGNoCkZPUk0geAo="}],"buildError":{"message":"unknown instruction: FORM","location":{"ranges":[{"start":{"line":2},"end":{"line":2}}]}}}"#;
        let (_, code) = printed(&call("lint"), &[("result.json", failing)]);
        let error = code.unwrap_err().to_string();
        assert!(error.starts_with("unknown instruction: FORM\nctx/Dockerfile:2\n"), "{error}");
        assert!(error.contains(">>> FORM x"), "{error}");
    }

    #[test]
    fn other_calls_print_their_text_or_json() {
        let (out, _) = printed(&call("outline"), &[("result.txt", "TARGET\n"), ("result.json", "{}")]);
        assert_eq!(out, "TARGET\n");
        let mut json = call("targets");
        json.format = Some("json".into());
        let (out, _) = printed(&json, &[("result.txt", "TARGET\n"), ("result.json", "{\"targets\":[]}")]);
        assert_eq!(out, "{\"targets\":[]}\n");
    }
}
