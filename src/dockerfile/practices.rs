//! A linter for the cache practices a Python (or Node, Go, Rust, Debian)
//! service's Dockerfile lives by: what makes a rebuild re-run steps it
//! did not need to, or empties a cache mount. Each rule has an id, the
//! line, a message and a fix; `fbuild check` prints them with the daemon
//! frontend's own rules (the native [`super::lint`]).
//!
//! The rules read the parsed instructions only (variables are not
//! expanded), so they are heuristics about commands as written: a command
//! hidden in a script the Dockerfile copies in is not seen.

use std::path::Path;

use serde::Serialize;

use super::compile::mounts::{parse_mount, MountKind};
use super::instructions::{Command, CommandKind, CommandLine, Stages};
use super::shell::Lexer;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's id (`CopyAllBeforeInstall`, or a daemon rule's name).
    pub rule: String,
    /// The Dockerfile line (1-based); 0 for findings about the context.
    pub line: usize,
    pub message: String,
    /// What to change.
    pub fix: String,
}

/// A context larger than this without a `.dockerignore` is reported.
pub const LARGE_CONTEXT_BYTES: u64 = 10 << 20;

/// A package manager a `RUN` step may call, with the cache folder a cache
/// mount should keep for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Installer {
    Pip,
    Npm,
    Yarn,
    Apt,
    Cargo,
    Go,
}

impl Installer {
    fn name(self) -> &'static str {
        match self {
            Installer::Pip => "pip",
            Installer::Npm => "npm",
            Installer::Yarn => "yarn",
            Installer::Apt => "apt-get",
            Installer::Cargo => "cargo",
            Installer::Go => "go",
        }
    }

    /// The cache mount that keeps its downloads between builds.
    fn mount(self) -> &'static str {
        match self {
            Installer::Pip => "--mount=type=cache,target=/root/.cache/pip",
            Installer::Npm => "--mount=type=cache,target=/root/.npm",
            Installer::Yarn => "--mount=type=cache,target=/usr/local/share/.cache/yarn",
            Installer::Apt => {
                "--mount=type=cache,target=/var/cache/apt,sharing=locked --mount=type=cache,target=/var/lib/apt,sharing=locked"
            }
            Installer::Cargo => "--mount=type=cache,target=/usr/local/cargo/registry",
            Installer::Go => "--mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build",
        }
    }
}

/// The words of a command, split on whitespace and shell separators, so
/// `pip install` matches whatever surrounds it.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '`'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `words` holds `first` directly followed by one of `then`.
fn has_pair(words: &[&str], first: &[&str], then: &[&str]) -> bool {
    words.windows(2).any(|w| first.contains(&w[0]) && then.contains(&w[1]))
}

/// The package managers a command calls, and whether it installs a
/// project's dependencies from its manifest (what `COPY . .` must follow).
fn installers(text: &str) -> (Vec<Installer>, bool) {
    let words = words(text);
    let mut found = Vec::new();
    let mut from_manifest = false;
    let pip = ["pip", "pip3"];
    if has_pair(&words, &pip, &["install"]) || has_pair(&words, &["poetry", "pipenv"], &["install"]) {
        found.push(Installer::Pip);
        let requirements = words.iter().any(|w| *w == "-r" || w.starts_with("--requirement"));
        from_manifest |= requirements || words.contains(&"poetry") || words.contains(&"pipenv");
    }
    if has_pair(&words, &["uv"], &["sync"]) {
        found.push(Installer::Pip);
        from_manifest = true;
    }
    if has_pair(&words, &["npm"], &["ci", "install", "i"]) {
        found.push(Installer::Npm);
        from_manifest = true;
    }
    if has_pair(&words, &["yarn"], &["install"]) || words.last() == Some(&"yarn") {
        found.push(Installer::Yarn);
        from_manifest = true;
    }
    if has_pair(&words, &["apt-get", "apt"], &["install"]) {
        found.push(Installer::Apt);
    }
    if has_pair(&words, &["cargo"], &["build", "fetch", "install"]) {
        found.push(Installer::Cargo);
        from_manifest = true;
    }
    if has_pair(&words, &["go"], &["build", "install"]) || text.contains("go mod download") {
        found.push(Installer::Go);
        from_manifest |= text.contains("go mod download");
    }
    (found, from_manifest)
}

/// A `RUN` step's text: the command and its heredoc bodies.
fn run_text(command: &CommandLine, heredocs: &[super::Heredoc]) -> String {
    let mut text = match command {
        CommandLine::Shell(shell) => shell.clone(),
        CommandLine::Exec(args) => args.join(" "),
    };
    for heredoc in heredocs {
        text.push('\n');
        text.push_str(&heredoc.content);
    }
    text
}

/// Whether a `COPY`/`ADD` from the context copies all of it.
fn copies_everything(sources: &[String]) -> bool {
    sources.iter().any(|s| matches!(s.trim_end_matches('/'), "." | "./" | "*" | "./*" | ""))
}

/// The automatic platform arguments, the same on every build of a platform.
fn is_platform_arg(name: &str) -> bool {
    name.starts_with("TARGET") || name.starts_with("BUILD")
}

/// Whether `text` names variable `name` (`$NAME` or `${NAME...}`).
fn uses_var(text: &str, name: &str) -> bool {
    text.match_indices('$').any(|(at, _)| {
        let rest = &text[at + 1..];
        let rest = rest.strip_prefix('{').unwrap_or(rest);
        rest.strip_prefix(name).is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
    })
}

/// The text of everything after `command` that could use a variable.
fn command_text(command: &Command) -> String {
    match &command.kind {
        CommandKind::Run { command: line, heredocs, mounts, .. } => {
            format!("{} {}", run_text(line, heredocs), mounts.join(" "))
        }
        _ => command.original.clone(),
    }
}

/// The practices rules over a Dockerfile's stages.
pub fn check_stages(stages: &Stages) -> Vec<Finding> {
    let mut findings = Vec::new();
    let lexer = Lexer::new('\\');
    let no_env = std::collections::BTreeMap::<String, String>::new();
    for stage in &stages.stages {
        let mut copied_all: Option<usize> = None;
        let mut docker_clean_removed = false;
        let mut docker_clean_reported = false;
        for (index, command) in stage.commands.iter().enumerate() {
            match &command.kind {
                CommandKind::Copy { transfer, from: None, .. } | CommandKind::Add { transfer, .. }
                    if copies_everything(&transfer.sources) =>
                {
                    copied_all.get_or_insert(command.line);
                }
                _ => {}
            }
            if let CommandKind::Add { transfer, checksum: None, .. } = &command.kind {
                if let Some(url) =
                    transfer.sources.iter().find(|s| s.starts_with("http://") || s.starts_with("https://"))
                {
                    findings.push(Finding {
                        rule: "RemoteAddWithoutChecksum".into(),
                        line: command.line,
                        message: format!(
                            "ADD {url} is fetched again whenever the cache is cold, and its content is not checked"
                        ),
                        fix: "add --checksum=sha256:DIGEST so the download is pinned and checked".into(),
                    });
                }
            }
            if let CommandKind::Arg(args) = &command.kind {
                for (name, _) in args {
                    if is_platform_arg(name) {
                        continue;
                    }
                    // The first RUN after the ARG that does not use it, before any step that does.
                    let later = &stage.commands[index + 1..];
                    let first_use = later.iter().position(|c| uses_var(&command_text(c), name));
                    let before_use = &later[..first_use.unwrap_or(later.len())];
                    if first_use.is_none() {
                        continue;
                    }
                    if let Some(run) = before_use.iter().find(|c| matches!(c.kind, CommandKind::Run { .. })) {
                        findings.push(Finding {
                            rule: "EarlyArg".into(),
                            line: command.line,
                            message: format!(
                                "ARG {name} is in the environment of every later RUN: a new value re-runs line {} too, which does not use it",
                                run.line
                            ),
                            fix: format!("declare ARG {name} just before the first step that uses it"),
                        });
                    }
                }
            }
            let CommandKind::Run { command: line, mounts, heredocs, .. } = &command.kind else { continue };
            let text = run_text(line, heredocs);
            let words = words(&text);
            if text.contains("docker-clean") || text.contains("Keep-Downloaded-Packages") {
                docker_clean_removed = true;
            }
            let parsed: Vec<_> = mounts.iter().filter_map(|m| parse_mount(m, &lexer, &no_env).ok()).collect();
            let cache_targets: Vec<&str> =
                parsed.iter().filter(|m| m.kind == MountKind::Cache).map(|m| m.target.as_str()).collect();
            let (installers, from_manifest) = installers(&text);

            if let (Some(copy_line), true) = (copied_all, from_manifest) {
                findings.push(Finding {
                    rule: "CopyAllBeforeInstall".into(),
                    line: command.line,
                    message: format!(
                        "the dependencies are installed after the whole context is copied (line {copy_line}): every code change installs them again"
                    ),
                    fix: "copy the dependency manifests (requirements.txt, package.json and its lock file, Cargo.toml and Cargo.lock, go.mod and go.sum) first, install, then copy the rest".into(),
                });
            }
            for installer in &installers {
                let covered = cache_targets.iter().any(|target| match installer {
                    Installer::Pip => target.contains("pip") || target.contains("pypoetry") || target.contains("/uv"),
                    Installer::Npm => target.contains("npm"),
                    Installer::Yarn => target.contains("yarn"),
                    Installer::Apt => target.starts_with("/var/cache/apt") || target.starts_with("/var/lib/apt"),
                    Installer::Cargo => target.contains("cargo") || target.contains("/target"),
                    Installer::Go => target.contains("go"),
                });
                if !covered {
                    findings.push(Finding {
                        rule: "InstallWithoutCacheMount".into(),
                        line: command.line,
                        message: format!(
                            "{} downloads again on every run of this step: it has no cache mount",
                            installer.name()
                        ),
                        fix: format!("RUN {} ...", installer.mount()),
                    });
                }
            }
            let pip_mount = cache_targets.iter().any(|t| t.contains("pip"));
            if pip_mount && installers.contains(&Installer::Pip) && words.contains(&"--no-cache-dir") {
                findings.push(Finding {
                    rule: "PipNoCacheDirUnderCacheMount".into(),
                    line: command.line,
                    message: "pip runs with --no-cache-dir under a pip cache mount: the mount stays empty".into(),
                    fix: "drop --no-cache-dir; the cache mount is not part of the image".into(),
                });
            }
            let apt_mounts: Vec<_> = parsed
                .iter()
                .filter(|m| {
                    m.kind == MountKind::Cache
                        && (m.target.starts_with("/var/cache/apt") || m.target.starts_with("/var/lib/apt"))
                })
                .collect();
            for mount in &apt_mounts {
                if mount.sharing != "locked" {
                    findings.push(Finding {
                        rule: "AptCacheMountNotLocked".into(),
                        line: command.line,
                        message: format!(
                            "the apt cache mount at {} is shared: two builds running apt at once corrupt it",
                            mount.target
                        ),
                        fix: "add sharing=locked to the mount".into(),
                    });
                }
            }
            if !apt_mounts.is_empty() && !docker_clean_removed && !docker_clean_reported {
                docker_clean_reported = true;
                findings.push(Finding {
                    rule: "AptDockerClean".into(),
                    line: command.line,
                    message: "Debian's /etc/apt/apt.conf.d/docker-clean deletes the downloaded packages after each install: the apt cache mount stays empty".into(),
                    fix: "RUN rm -f /etc/apt/apt.conf.d/docker-clean before the first apt-get in the stage".into(),
                });
            }
            if has_pair(&words, &["apt-get", "apt"], &["update"])
                && !has_pair(&words, &["apt-get", "apt"], &["install"])
            {
                findings.push(Finding {
                    rule: "AptUpdateAlone".into(),
                    line: command.line,
                    message: "apt-get update runs in a step of its own: its cached result goes stale while later installs reuse it".into(),
                    fix: "run apt-get update && apt-get install in the same RUN".into(),
                });
            }
        }
    }
    findings
}

/// The context rule: a large context without `.dockerignore` (its size,
/// counted up to a bound so a huge folder is not walked to its end).
pub fn check_context(context: &Path, dockerfile_name: &str) -> Option<Finding> {
    let ignore_files = [".dockerignore".to_string(), format!("{dockerfile_name}.dockerignore")];
    if ignore_files.iter().any(|name| context.join(name).is_file()) {
        return None;
    }
    let mut size = 0u64;
    let mut pending = vec![context.to_path_buf()];
    let mut entries = 0usize;
    while let Some(dir) = pending.pop() {
        let Ok(listing) = std::fs::read_dir(&dir) else { continue };
        for entry in listing.flatten() {
            entries += 1;
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                size += meta.len();
            }
            // Enough to say it is large; walking on would cost, not tell.
            if size > LARGE_CONTEXT_BYTES * 100 || entries > 1_000_000 {
                pending.clear();
                break;
            }
        }
    }
    (size > LARGE_CONTEXT_BYTES).then(|| Finding {
        rule: "LargeContextWithoutDockerignore".into(),
        line: 0,
        message: format!(
            "the context holds {} and has no .dockerignore: all of it is sent, and COPY . . changes with any file",
            human_size(size)
        ),
        fix: "add a .dockerignore listing .git, virtual environments, node_modules, build output and data files".into(),
    })
}

fn human_size(bytes: u64) -> String {
    const MIB: f64 = (1 << 20) as f64;
    format!("{:.1} MiB", bytes as f64 / MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(text: &str) -> Vec<(String, usize)> {
        let parsed = super::super::parse(text).unwrap();
        let stages = super::super::instructions::stages(&parsed).unwrap();
        check_stages(&stages).into_iter().map(|f| (f.rule, f.line)).collect()
    }

    #[test]
    fn each_rule_finds_its_case() {
        let text = "FROM python:3.12 AS base\n\
                    ARG VERSION\n\
                    RUN apt-get update\n\
                    RUN --mount=type=cache,target=/var/cache/apt apt-get install -y gcc\n\
                    COPY . .\n\
                    RUN pip install -r requirements.txt\n\
                    RUN --mount=type=cache,target=/root/.cache/pip pip install --no-cache-dir -r requirements.txt\n\
                    ADD https://example.com/tool.tgz /opt/\n\
                    RUN echo $VERSION > /version\n";
        assert_eq!(
            findings(text),
            [
                ("EarlyArg".to_string(), 2),
                ("AptUpdateAlone".to_string(), 3),
                ("AptCacheMountNotLocked".to_string(), 4),
                ("AptDockerClean".to_string(), 4),
                ("CopyAllBeforeInstall".to_string(), 6),
                ("InstallWithoutCacheMount".to_string(), 6),
                ("CopyAllBeforeInstall".to_string(), 7),
                ("PipNoCacheDirUnderCacheMount".to_string(), 7),
                ("RemoteAddWithoutChecksum".to_string(), 8),
            ]
        );
    }

    #[test]
    fn a_dockerfile_that_follows_the_practices_has_no_findings() {
        let text = "FROM python:3.12 AS deps\n\
                    RUN rm -f /etc/apt/apt.conf.d/docker-clean\n\
                    RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\\n\
                    \x20   --mount=type=cache,target=/var/lib/apt,sharing=locked \\\n\
                    \x20   apt-get update && apt-get install -y gcc\n\
                    COPY requirements.txt .\n\
                    RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt\n\
                    FROM deps AS app\n\
                    COPY . .\n\
                    ARG VERSION\n\
                    RUN echo $VERSION > /version\n\
                    ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/t.tgz /opt/\n";
        assert_eq!(findings(text), []);
    }

    #[test]
    fn words_and_variables_are_matched_whole() {
        assert!(uses_var("echo ${VERSION:-x}", "VERSION"));
        assert!(!uses_var("echo $VERSIONS", "VERSION"));
        assert_eq!(installers("python -m pip install -r r.txt").0, [Installer::Pip]);
        assert!(installers("echo pipeline install").0.is_empty());
    }
}
