//! The Dockerfile linter of BuildKit v0.32.2's frontend, natively: the same
//! rules ([`rules`]), messages, line ranges, the `# check=` directive
//! (`skip=RULE,...|all`, `experimental=...`, `error=true`) and the same
//! JSON as the daemon's `--call check` (`lint.LintResults`), so a native
//! build needs no lint subrequest.
//!
//! The walk in `check.rs` follows what `dockerfile2llb.DockerfileLint`
//! does: the parse-time rules (`instructions.Parse`), the stage checks,
//! the `FROM` expansions with the global arguments, then every stage
//! dispatched in file order (lint treats every stage as a target), where
//! the rules that depend on the environment (`UndefinedVar`, ...) fire.
//! What the daemon would learn from the registry (a base image's
//! environment, shell, platform) comes in as [`LintInput::base_image`], and
//! `.dockerignore`'s patterns as [`LintInput::dockerignore`].
//!
//! Go visits some sets in map order (several undefined variables in one
//! word, the rules named in the `error=true` failure): the daemon's order
//! there is random; ours is the order of first use.

mod check;
mod gosort;
pub mod rules;

use std::collections::BTreeMap;

use serde::Serialize;

pub use rules::Rule;

/// A base image as the daemon's frontend sees it after resolving it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImage {
    /// `Env` of the image config, `KEY=VALUE` each.
    pub env: Vec<String>,
    /// `Shell` of the image config (empty when unset).
    pub shell: Vec<String>,
    /// `WorkingDir` of the image config.
    pub working_dir: String,
    /// The platform the image was resolved with: `os/arch[/variant]`.
    pub platform: Option<String>,
    /// `OnBuild` of the image config: triggers a stage built on it runs.
    pub onbuild: Vec<String>,
    /// A named context stands for the image (`--build-context`): its
    /// platform is not checked (`resolveBaseImage` returns before).
    pub named_context: bool,
}

/// What the linter reads.
pub struct LintInput<'a> {
    /// The Dockerfile's text.
    pub dockerfile: &'a str,
    /// The name the sources list gives it (`Dockerfile`).
    pub filename: &'a str,
    /// `--build-arg`s.
    pub build_args: &'a BTreeMap<String, String>,
    /// `--target`: the stage a build builds (default: the last), which sets
    /// `TARGETSTAGE` and, unless [`LintInput::all_stages`], which stages are
    /// dispatched (the ones it needs).
    pub target: Option<&'a str>,
    /// Dispatch every stage, as `--call check` without a target does
    /// (`AllStages`); a build, or a check with a target, dispatches only the
    /// stages the target needs, and resolves only their base images.
    pub all_stages: bool,
    /// The target platform (`linux/amd64`).
    pub platform: &'a str,
    /// The platforms the daemon's worker builds for, first its own
    /// (`BUILDPLATFORM`); empty: the target platform.
    pub build_platforms: &'a [String],
    /// No `--platform` was given: a base image of another platform the
    /// worker runs is taken as it is (`autoDetectPlatform`) rather than
    /// warned about.
    pub implicit_platform: bool,
    /// The build argument `BUILDKIT_DOCKERFILE_CHECK`, which replaces the
    /// `# check=` directive when given.
    pub check: Option<&'a str>,
    /// `.dockerignore`'s patterns, if the context has one.
    pub dockerignore: Option<&'a [String]>,
    /// Resolves a base image by its expanded name, with the platform asked
    /// for; `Err` is the resolver's message for an image it cannot resolve
    /// (the linter puts the name in front, as the frontend does).
    pub base_image: &'a dyn Fn(&str, &str) -> Result<BaseImage, ResolveError>,
}

/// A base image that could not be resolved: the resolver's message (the
/// daemon's, for a build), which the linter prints after the image's name
/// as the frontend does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ResolveError {
    pub message: String,
}

impl From<String> for ResolveError {
    fn from(message: String) -> Self {
        ResolveError { message }
    }
}

/// A line range as BuildKit's `pb.Range` serialises it (characters are
/// always 0 for lint findings, and Go leaves zeros out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    #[serde(skip_serializing_if = "is_zero")]
    pub line: i32,
    #[serde(skip_serializing_if = "is_zero")]
    pub character: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// `pb.Location`: which source, which lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    #[serde(skip_serializing_if = "is_zero")]
    pub source_index: i32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
}

impl Location {
    /// Go's `toRanges`: one range per line from `start` to `end`.
    pub(crate) fn lines(start: usize, end: usize) -> Location {
        let end = end.max(start);
        let ranges = (start..=end)
            .map(|line| {
                let position = Position { line: line as i32, character: 0 };
                Range { start: position.clone(), end: position }
            })
            .collect();
        Location { source_index: 0, ranges }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LintWarning {
    pub rule_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub location: Location,
}

impl LintWarning {
    /// The one-line form a build's progress shows (`linter.LintFormatShort`):
    /// `RULE: detail (line N)`.
    pub fn short(&self) -> String {
        let line = self.location.ranges.first().map(|r| r.start.line).unwrap_or(0);
        if line > 0 {
            format!("{}: {} (line {line})", self.rule_name, self.detail)
        } else {
            format!("{}: {}", self.rule_name, self.detail)
        }
    }
}

/// A Dockerfile the frontend cannot build: its message and where. With
/// `# check=error=true` and findings, this is the build's failure
/// (`lint violation found for rules: ...`), as the daemon's frontend fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildError {
    pub message: String,
    pub location: Location,
}

/// A source the findings point into (`pb.SourceInfo` without the LLB
/// definition of the daemon's `dockerfile` local, which only the daemon
/// has).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    pub filename: String,
    /// Base64, as Go's JSON writes bytes.
    pub data: String,
    pub language: String,
}

/// The daemon's `lint.LintResults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintResults {
    /// `null` when there are none, as Go writes a nil slice.
    pub warnings: Option<Vec<LintWarning>>,
    pub sources: Vec<SourceInfo>,
    #[serde(rename = "buildError", skip_serializing_if = "Option::is_none")]
    pub error: Option<BuildError>,
}

impl LintResults {
    /// The findings (none when `warnings` is `null`).
    pub fn warnings(&self) -> &[LintWarning] {
        self.warnings.as_deref().unwrap_or_default()
    }

    /// The failure `# check=error=true` asks for when there are findings
    /// (`lint violation found for rules: ...`); other build errors are the
    /// compiler's to report.
    pub fn violation(&self) -> Option<&BuildError> {
        self.error.as_ref().filter(|e| e.message.starts_with("lint violation found for rules: "))
    }

    /// The findings as the daemon's `result.txt` (`PrintLintViolations`):
    /// sorted by file and line, each with its rule, URL, detail and the
    /// lines around it. `text` is the Dockerfile's.
    ///
    /// Findings of one line keep the order Go's `sort.Slice` leaves them
    /// in (their own up to 12 findings, not always beyond).
    pub fn to_text(&self, text: &str) -> String {
        let mut warnings: Vec<&LintWarning> = self.warnings().iter().collect();
        let filename = |w: &LintWarning| {
            self.sources.get(w.location.source_index as usize).map_or("", |s| s.filename.as_str()).to_owned()
        };
        // `PrintTo`'s less: by file, findings without lines first, then by
        // the first line.
        gosort::sort_slice(&mut warnings, |a: &&LintWarning, b: &&LintWarning| {
            let (a, b) = (*a, *b);
            let (fa, fb) = (filename(a), filename(b));
            if fa != fb {
                return fa < fb;
            }
            match (a.location.ranges.first(), b.location.ranges.first()) {
                (None, None) => a.rule_name < b.rule_name,
                (None, Some(_)) | (Some(_), None) => a.location.ranges.is_empty(),
                (Some(ra), Some(rb)) => ra.start.line < rb.start.line,
            }
        });
        let mut out = Vec::new();
        for warning in warnings {
            out.extend_from_slice(format!("\nWARNING: {}", warning.rule_name).as_bytes());
            if !warning.url.is_empty() {
                out.extend_from_slice(format!(" - {}", warning.url).as_bytes());
            }
            out.extend_from_slice(format!("\n{}\n", warning.detail).as_bytes());
            let snippet = crate::progress::SourceSnippet {
                filename: filename(warning),
                text: text.to_owned(),
                ranges: warning
                    .location
                    .ranges
                    .iter()
                    .map(|r| crate::progress::LineRange { start: r.start.line, end: r.end.line })
                    .collect(),
            };
            // Writing into a vector cannot fail.
            let _ = crate::progress::write_source_context(&mut out, &snippet);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The daemon's lint answer as the frontend returns it in its result's
    /// metadata: `result.json`, `result.txt`, `result.statuscode` (1 when
    /// there are findings or an error) and `version`.
    pub fn answer(&self, text: &str) -> BTreeMap<String, Vec<u8>> {
        let status = if self.warnings().is_empty() && self.error.is_none() { "0" } else { "1" };
        BTreeMap::from([
            ("result.json".to_owned(), self.to_json().into_bytes()),
            ("result.txt".to_owned(), self.to_text(text).into_bytes()),
            ("result.statuscode".to_owned(), status.as_bytes().to_vec()),
            ("version".to_owned(), b"1.0.0".to_vec()),
        ])
    }

    /// The daemon's JSON (`json.MarshalIndent(results, "", "  ")`).
    pub fn to_json(&self) -> String {
        String::from_utf8(crate::gojson::marshal_indent(self)).unwrap_or_default()
    }
}

/// Lints a Dockerfile as the daemon's `--call check` does.
pub fn lint(input: &LintInput<'_>) -> LintResults {
    check::run(input)
}

/// A `# check=` value: what to skip, which experimental rules to run,
/// and whether findings fail the build (`linter.Config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip_all: bool,
    pub skip: Vec<String>,
    pub experimental_all: bool,
    pub experimental: Vec<String>,
    pub error: bool,
}

/// A `check` directive (or `BUILDKIT_DOCKERFILE_CHECK`) value the frontend
/// refuses, in its words (`linter.ParseLintOptions`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckConfigError {
    /// A part that is not `key=value`, or an unknown key.
    #[error("invalid check option {}", super::parser::go_quote(.0.as_str()))]
    InvalidOption(String),
    /// `error=` with a value Go's `strconv.ParseBool` refuses.
    #[error(
        "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
        super::parser::go_quote(.part.as_str()),
        super::parser::go_quote(.value.as_str())
    )]
    InvalidError { part: String, value: String },
}

impl CheckConfig {
    /// Parses a `check` directive's value (`linter.ParseLintOptions`); the
    /// error is the frontend's words.
    pub fn parse(value: &str) -> Result<CheckConfig, CheckConfigError> {
        let mut config = CheckConfig::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(config);
        }
        // Go's SplitN(..., 3): a fourth part stays in the third's value.
        for part in value.splitn(3, ';') {
            let Some((key, v)) = part.split_once('=') else {
                return Err(CheckConfigError::InvalidOption(part.to_owned()));
            };
            let list = |v: &str| v.split(',').map(|r| r.trim().to_string()).collect::<Vec<_>>();
            match key.trim() {
                "skip" => match v.trim() {
                    "all" => config.skip_all = true,
                    v => config.skip = list(v),
                },
                "experimental" => match v.trim() {
                    "all" => config.experimental_all = true,
                    v => config.experimental = list(v),
                },
                "error" => {
                    config.error = crate::gostrconv::parse_bool(v.trim()).ok_or_else(|| {
                        CheckConfigError::InvalidError { part: part.to_owned(), value: v.trim().to_owned() }
                    })?
                }
                other => return Err(CheckConfigError::InvalidOption(other.to_owned())),
            }
        }
        Ok(config)
    }

    /// `WithMergedConfig`: a per-instruction directive adds to the file's.
    fn merged(&self, other: &CheckConfig) -> CheckConfig {
        let mut merged = self.clone();
        merged.experimental_all |= other.experimental_all;
        merged.experimental.extend(other.experimental.iter().cloned());
        merged.skip_all |= other.skip_all;
        merged.skip.extend(other.skip.iter().cloned());
        merged
    }

    /// `WithMergedConfigFromComments`: the first `check=` comment right
    /// above an instruction (an invalid one changes nothing).
    pub(crate) fn with_comments(&self, comments: &[String]) -> CheckConfig {
        for comment in comments {
            let Some(value) = check_comment(comment) else { continue };
            let value = value.split(' ').next().unwrap_or_default();
            return match CheckConfig::parse(value) {
                Ok(other) => self.merged(&other),
                Err(_) => self.clone(),
            };
        }
        self.clone()
    }

    /// Whether `rule` reports under this configuration (`Linter.Run`).
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.iter().any(|r| r == rule.name)
        } else {
            !(self.skip_all || self.skip.iter().any(|r| r == rule.name))
        }
    }
}

/// A comment (its `#` already gone) that is a `check=` directive: its
/// value (`DirectiveParser.ParseLine` with no comment marker).
fn check_comment(comment: &str) -> Option<&str> {
    let line = comment.trim_start();
    let name_end = line.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(line.len());
    let (name, rest) = line.split_at(name_end);
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) || !name.eq_ignore_ascii_case("check") {
        return None;
    }
    let value = rest.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some(value)
}

/// The findings of `dockerfile` as the daemon's `--call check,format=json`
/// prints them, for tests that compare the two: `dockerignore` is the
/// context's `.dockerignore` text, and `images` the configs (JSON) of the
/// images there are, by name, on a `linux/amd64` build; any other image
/// fails to resolve as in the daemon.
#[doc(hidden)]
pub fn lint_json(
    dockerfile: &str,
    build_args: &BTreeMap<String, String>,
    dockerignore: Option<&str>,
    images: &BTreeMap<String, String>,
) -> String {
    let patterns = dockerignore.map(|text| crate::fsync::patterns::parse_dockerignore(text.as_bytes()));
    let resolve = |name: &str, _: &str| match images.get(name) {
        Some(config) => Ok(base_image_from_config(config)),
        None => Err(ResolveError::from(format!(
            "failed to resolve source metadata for {}: not found",
            crate::llb::normalize_reference(name).unwrap_or_else(|_| name.to_owned())
        ))),
    };
    lint(&LintInput {
        dockerfile,
        filename: "Dockerfile",
        build_args,
        target: None,
        all_stages: true,
        platform: "linux/amd64",
        build_platforms: &["linux/amd64".to_string()],
        implicit_platform: true,
        check: None,
        dockerignore: patterns.as_deref(),
        base_image: &resolve,
    })
    .to_json()
}

/// A [`BaseImage`] from an image config the compiler resolved.
pub(crate) fn base_image_from_image(image: &crate::dockerfile::compile::Image, named_context: bool) -> BaseImage {
    let mut platform = format!("{}/{}", image.os, image.architecture);
    if !image.variant.is_empty() {
        platform = format!("{platform}/{}", image.variant);
    }
    BaseImage {
        env: image.config.env.clone(),
        shell: image.config.shell.clone(),
        working_dir: image.config.working_dir.clone(),
        platform: (platform != "/").then_some(platform),
        onbuild: image.config.on_build.clone(),
        named_context,
    }
}

/// A [`BaseImage`] from an image config's JSON (`os`, `architecture`,
/// `variant`, `config.Env`, `config.Shell`, `config.WorkingDir`,
/// `config.OnBuild`).
pub fn base_image_from_config(config: &str) -> BaseImage {
    let config: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut platform = format!("{}/{}", text(&config["os"]), text(&config["architecture"]));
    if let Some(variant) = config["variant"].as_str().filter(|v| !v.is_empty()) {
        platform = format!("{platform}/{variant}");
    }
    BaseImage {
        env: strings(&config["config"]["Env"]),
        shell: strings(&config["config"]["Shell"]),
        working_dir: text(&config["config"]["WorkingDir"]),
        platform: (platform != "/").then_some(platform),
        onbuild: strings(&config["config"]["OnBuild"]),
        named_context: false,
    }
}

#[cfg(test)]
mod tests;
