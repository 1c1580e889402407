//! Parsed instructions to typed ones, grouped into stages, as BuildKit's
//! `frontend/dockerfile/instructions` does: each instruction's flags checked
//! against what it takes (`unknown flag: --x`, a missing value, a duplicate),
//! its argument count, `FROM`'s stage name; `ARG`s before the first `FROM`
//! kept as global; and which stages a target needs.
//!
//! Values are kept as written: variables are expanded when a stage is
//! compiled (their values depend on the stage), with [`super::shell`].

use std::collections::BTreeMap;

use super::parser::{Args, Dockerfile, Heredoc, Instruction};

/// A Dockerfile's stages and its global `ARG`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    /// `ARG`s before the first `FROM` (usable in `FROM` lines).
    pub global_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
}

/// One `FROM` and the commands under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// The image, stage or `scratch` it starts from, as written.
    pub base: String,
    /// `--platform=`.
    pub platform: Option<String>,
    pub commands: Vec<Command>,
    /// The `FROM` line.
    pub line: usize,
    /// The `FROM` instruction as written.
    pub original: String,
}

/// A command, its line, and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub line: usize,
    pub end_line: usize,
    /// The instruction as written (continuations joined).
    pub original: String,
    pub kind: CommandKind,
}

/// A command line in shell or JSON (exec) form.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandLine {
    Shell(String),
    Exec(Vec<String>),
}

/// Sources and destination of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub sources: Vec<String>,
    /// Heredoc sources: name (the file's name) and content (leading tabs
    /// already removed for `<<-`), and whether to expand variables in it.
    pub inline: Vec<(String, String, bool)>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandKind {
    Arg(Vec<(String, Option<String>)>),
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Run {
        command: CommandLine,
        mounts: Vec<String>,
        network: Option<String>,
        security: Option<String>,
        /// `--device` (CDI devices).
        devices: Vec<String>,
        heredocs: Vec<Heredoc>,
    },
    Copy {
        transfer: Transfer,
        from: Option<String>,
        parents: bool,
    },
    Add {
        transfer: Transfer,
        keep_git_dir: Option<bool>,
        checksum: Option<String>,
        unpack: Option<bool>,
    },
    Workdir(String),
    User(String),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<String>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck {
        /// `None` for `HEALTHCHECK NONE`.
        test: Option<CommandLine>,
        flags: BTreeMap<String, String>,
    },
    Onbuild(String),
    Maintainer(String),
}

/// A Dockerfile whose instructions cannot be used: the frontend's message
/// and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct InstructionError {
    pub line: usize,
    pub message: String,
}

/// A flag's kind: a value, a boolean, or a list of values (repeatable).
#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Value,
    Bool,
    List,
}

/// An instruction's flag the frontend refuses (`BFlags.Parse`), in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    #[error("arg should start with -- : {0}")]
    NotAFlag(String),
    #[error("unknown flag: {flag}{}", similar.map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    Unknown { flag: String, similar: Option<&'static str> },
    #[error("duplicate flag specified: {0}")]
    Duplicate(String),
    #[error("missing a value on flag: {0}")]
    MissingValue(String),
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    NotBool { flag: String, value: String },
}

/// The flags an instruction was given, checked against what it takes.
struct Flags {
    values: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    fn parse(given: &[String], allowed: &[(&'static str, FlagKind)]) -> Result<Flags, FlagError> {
        let mut values: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for flag in given {
            if flag == "--" {
                break;
            }
            let Some(body) = flag.strip_prefix("--") else {
                return Err(FlagError::NotAFlag(flag.clone()));
            };
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let shown = format!("--{name}");
            let Some(&(key, kind)) = allowed.iter().find(|(known, _)| *known == name) else {
                let similar = allowed.iter().map(|(k, _)| *k).find(|k| similar(k, name));
                return Err(FlagError::Unknown { flag: shown, similar });
            };
            if values.contains_key(key) && kind != FlagKind::List {
                return Err(FlagError::Duplicate(shown));
            }
            let value = match kind {
                FlagKind::Bool => match value.map(str::to_ascii_lowercase).as_deref() {
                    Some("") => return Err(FlagError::MissingValue(shown)),
                    None | Some("true") => "true".to_string(),
                    Some("false") => "false".to_string(),
                    Some(_) => {
                        return Err(FlagError::NotBool { flag: shown, value: value.unwrap_or_default().to_owned() })
                    }
                },
                FlagKind::Value | FlagKind::List => match value {
                    Some(value) => value.to_string(),
                    None => return Err(FlagError::MissingValue(shown)),
                },
            };
            values.entry(key).or_default().push(value);
        }
        Ok(Flags { values })
    }

    fn value(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last()).cloned()
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    fn bool(&self, name: &str) -> Option<bool> {
        self.value(name).map(|v| v == "true")
    }
}

/// A `RUN --device` value, as the frontend's `ParseDevice` reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Device {
    /// The CDI device name (`vendor.com/class=name`).
    pub(crate) name: String,
    pub(crate) required: bool,
}

/// A `RUN --device` value the frontend refuses (`ParseDevice`), in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Not one CSV record (Go's `io.EOF` reads "EOF").
    #[error("failed to parse csv devices: {0}")]
    Csv(String),
    #[error("device name already set to {0}")]
    NameSet(String),
    #[error("invalid value for {key}: {value}")]
    InvalidValue { key: String, value: String },
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    #[error("unexpected key '{key}' in '{field}'{}", similar.map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownKey { key: String, field: String, similar: Option<&'static str> },
}

/// Go's `instructions.ParseDevice`: CSV fields; the first bare field (or
/// the first `key=value` with an unknown key, since CDI names hold `=`) is
/// the name, `name=` sets it, `required[=BOOL]` makes it required.
pub(crate) fn parse_device(value: &str) -> Result<Device, DeviceError> {
    let fields = crate::dockerfile::compile::mounts::csv_fields(value).map_err(DeviceError::Csv)?;
    let mut device = Device::default();
    for field in fields {
        let (key, value) = match field.split_once('=') {
            Some((key, value)) => (key.to_lowercase(), Some(value)),
            None => (field.to_lowercase(), None),
        };
        match (key.as_str(), value) {
            ("required", None) => device.required = true,
            ("name", Some(value)) => {
                if !device.name.is_empty() {
                    return Err(DeviceError::NameSet(device.name));
                }
                device.name = value.to_owned();
            }
            ("required", Some(value)) => {
                device.required = crate::gostrconv::parse_bool(value)
                    .ok_or_else(|| DeviceError::InvalidValue { key: key.clone(), value: value.to_owned() })?;
            }
            _ if device.name.is_empty() => device.name = field.clone(),
            (_, None) => return Err(DeviceError::NotKeyValue(field)),
            (_, Some(_)) => {
                let similar = ["name", "required"].into_iter().find(|k| similar(k, &key));
                return Err(DeviceError::UnknownKey { key, field, similar });
            }
        }
    }
    Ok(device)
}

/// moby's `signal.ParseSignal` (Linux) accepts `text`: a non-zero integer
/// (Go's `Atoi`), or a signal's name, `SIG` optional, any case. The
/// compiler's `STOPSIGNAL` and the linter both ask here.
pub(crate) fn is_signal(text: &str) -> bool {
    if let Ok(number) = text.parse::<i64>() {
        return number != 0;
    }
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL",
        "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1",
        "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
    ];
    let name = text.to_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    // The real-time signals run from 34 (RTMIN) to 64 (RTMAX), each named
    // from both ends: RTMIN+1..RTMIN+15 and RTMAX-14..RTMAX-1.
    let offset = |prefix: &str, most: u8| {
        name.strip_prefix(prefix).is_some_and(|n| {
            !n.starts_with('+') && n.parse::<u8>().is_ok_and(|n| (1..=most).contains(&n)) && !n.starts_with('0')
        })
    };
    NAMES.contains(&name) || offset("RTMIN+", 15) || offset("RTMAX-", 14)
}

/// Close enough to suggest `candidate` for `given` ("did you mean").
pub(crate) fn similar(candidate: &str, given: &str) -> bool {
    // BuildKit suggests within a Levenshtein distance of 2.
    strsim::levenshtein(candidate, given) <= 2
}

fn words(args: &Args) -> Vec<String> {
    match args {
        Args::Words(words) => words.clone(),
        Args::Text(text) => vec![text.clone()],
        _ => Vec::new(),
    }
}

fn command_line(instruction: &Instruction) -> Option<CommandLine> {
    match &instruction.args {
        Args::Words(words) if instruction.json => Some(CommandLine::Exec(words.clone())),
        Args::Text(text) => Some(CommandLine::Shell(text.clone())),
        Args::Words(words) => Some(CommandLine::Shell(words.join(" "))),
        _ => None,
    }
}

/// Splits `KEY=VALUE` words of `ARG`.
fn arg_pairs(words: &[String]) -> Vec<(String, Option<String>)> {
    words
        .iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) => (key.to_string(), Some(value.to_string())),
            None => (word.clone(), None),
        })
        .collect()
}

/// Go's `stageNameRegexp`, built once.
static STAGE_NAME: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new("^[a-z][a-z0-9-_.]*$").expect("a valid pattern"));

/// Groups `dockerfile`'s instructions into stages with typed commands.
pub fn stages(dockerfile: &Dockerfile) -> Result<Stages, InstructionError> {
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let stage_name = &*STAGE_NAME;
    for instruction in &dockerfile.instructions {
        let fail = |message: String| InstructionError { line: instruction.start_line, message };
        let keyword = instruction.keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            let flags =
                Flags::parse(&instruction.flags, &[("platform", FlagKind::Value)]).map_err(|e| fail(e.to_string()))?;
            let args = words(&instruction.args);
            let name = match args.as_slice() {
                [_] => None,
                [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => {
                    let lower = name.to_lowercase();
                    if !stage_name.is_match(&lower) {
                        return Err(fail(format!(
                            "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                        )));
                    }
                    Some(lower)
                }
                _ => return Err(fail("FROM requires either one or three arguments".into())),
            };
            stages.push(Stage {
                name,
                base: args[0].clone(),
                platform: flags.value("platform"),
                commands: Vec::new(),
                line: instruction.start_line,
                original: instruction.original.trim().to_string(),
            });
            continue;
        }
        let kind = command(instruction, &keyword).map_err(fail)?;
        match (stages.last_mut(), kind) {
            (None, CommandKind::Arg(pairs)) => global_args.extend(pairs),
            (None, _) => {
                return Err(InstructionError {
                    line: instruction.start_line,
                    message: "no build stage in current context".into(),
                })
            }
            (Some(stage), kind) => stage.commands.push(Command {
                line: instruction.start_line,
                end_line: instruction.end_line,
                original: instruction.original.trim().to_string(),
                kind,
            }),
        }
    }
    Ok(Stages { global_args, stages })
}

/// One non-`FROM` instruction as a typed command.
pub(crate) fn command(instruction: &Instruction, keyword: &str) -> Result<CommandKind, String> {
    let args = words(&instruction.args);
    let no_flags = |flags: &[String]| Flags::parse(flags, &[]).map(|_| ()).map_err(|e| e.to_string());
    match keyword {
        "ARG" => {
            no_flags(&instruction.flags)?;
            if args.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            Ok(CommandKind::Arg(arg_pairs(&args)))
        }
        "ENV" | "LABEL" => {
            no_flags(&instruction.flags)?;
            let Args::KeyValues(pairs) = &instruction.args else {
                return Err(format!("{keyword} requires at least one argument"));
            };
            let pairs = pairs.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
            Ok(if keyword == "ENV" { CommandKind::Env(pairs) } else { CommandKind::Label(pairs) })
        }
        "RUN" => {
            let flags = Flags::parse(
                &instruction.flags,
                &[
                    ("mount", FlagKind::List),
                    ("network", FlagKind::Value),
                    ("security", FlagKind::Value),
                    ("device", FlagKind::List),
                ],
            )
            .map_err(|e| e.to_string())?;
            // Checked as they are parsed, in every stage, built or not (the
            // frontend's RUN post-hook for devices runs before the others).
            for device in flags.list("device") {
                parse_device(&device).map_err(|e| e.to_string())?;
            }
            let command = command_line(instruction).ok_or("RUN requires at least one argument")?;
            Ok(CommandKind::Run {
                command,
                mounts: flags.list("mount"),
                network: flags.value("network"),
                security: flags.value("security"),
                devices: flags.list("device"),
                heredocs: instruction.heredocs.clone(),
            })
        }
        "COPY" | "ADD" => {
            if args.len() < 2 {
                return Err(format!(
                    "{keyword} requires at least two arguments, but only one was provided. Destination could not be determined"
                ));
            }
            let mut allowed = vec![
                ("chown", FlagKind::Value),
                ("chmod", FlagKind::Value),
                ("link", FlagKind::Bool),
                ("exclude", FlagKind::List),
            ];
            if keyword == "COPY" {
                allowed.extend([("from", FlagKind::Value), ("parents", FlagKind::Bool)]);
            } else {
                allowed.extend([
                    ("keep-git-dir", FlagKind::Bool),
                    ("checksum", FlagKind::Value),
                    ("unpack", FlagKind::Bool),
                ]);
            }
            let flags = Flags::parse(&instruction.flags, &allowed).map_err(|e| e.to_string())?;
            let transfer = transfer(keyword, &args, &instruction.heredocs, &flags)?;
            Ok(if keyword == "COPY" {
                CommandKind::Copy {
                    transfer,
                    from: flags.value("from"),
                    parents: flags.bool("parents").unwrap_or(false),
                }
            } else {
                CommandKind::Add {
                    transfer,
                    keep_git_dir: flags.bool("keep-git-dir"),
                    checksum: flags.value("checksum"),
                    unpack: flags.bool("unpack"),
                }
            })
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => {
            no_flags(&instruction.flags)?;
            let value = match &instruction.args {
                Args::Text(text) => text.clone(),
                _ => return Err(format!("{keyword} requires exactly one argument")),
            };
            if keyword == "STOPSIGNAL" && value.split_whitespace().count() != 1 {
                return Err("STOPSIGNAL requires exactly one argument".into());
            }
            Ok(match keyword {
                "WORKDIR" => CommandKind::Workdir(value),
                "USER" => CommandKind::User(value),
                "STOPSIGNAL" => CommandKind::StopSignal(value),
                _ => CommandKind::Maintainer(value),
            })
        }
        "CMD" | "ENTRYPOINT" => {
            no_flags(&instruction.flags)?;
            // An empty CMD/ENTRYPOINT is a (shell-form) empty command.
            let line = command_line(instruction).unwrap_or(CommandLine::Shell(String::new()));
            Ok(if keyword == "CMD" { CommandKind::Cmd(line) } else { CommandKind::Entrypoint(line) })
        }
        "SHELL" => {
            no_flags(&instruction.flags)?;
            match (&instruction.args, instruction.json) {
                (Args::Words(words), true) if !words.is_empty() => Ok(CommandKind::Shell(words.clone())),
                (Args::None, _) => Err("SHELL requires at least one argument".into()),
                _ => Err("SHELL requires the arguments to be in JSON form".into()),
            }
        }
        "EXPOSE" | "VOLUME" => {
            no_flags(&instruction.flags)?;
            if args.is_empty() {
                return Err(format!("{keyword} requires at least one argument"));
            }
            if keyword == "VOLUME" && args.iter().any(|a| a.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Ok(if keyword == "EXPOSE" { CommandKind::Expose(args) } else { CommandKind::Volume(args) })
        }
        "HEALTHCHECK" => {
            let flags = Flags::parse(
                &instruction.flags,
                &[
                    ("interval", FlagKind::Value),
                    ("timeout", FlagKind::Value),
                    ("start-period", FlagKind::Value),
                    ("start-interval", FlagKind::Value),
                    ("retries", FlagKind::Value),
                ],
            )
            .map_err(|e| e.to_string())?;
            let Args::Health { kind, command } = &instruction.args else {
                return Err("HEALTHCHECK requires at least one argument".into());
            };
            let test = match kind.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !matches!(command.as_ref(), Args::None) {
                        return Err("HEALTHCHECK NONE takes no arguments".into());
                    }
                    None
                }
                "CMD" => {
                    let line = match command.as_ref() {
                        Args::Words(words) if instruction.json => CommandLine::Exec(words.clone()),
                        Args::Text(text) => CommandLine::Shell(text.clone()),
                        _ => return Err("Missing command after HEALTHCHECK CMD".into()),
                    };
                    Some(line)
                }
                other => return Err(format!("Unknown type {other:?} in HEALTHCHECK (try CMD)")),
            };
            let flags =
                flags.values.iter().map(|(k, v)| (k.to_string(), v.last().cloned().unwrap_or_default())).collect();
            Ok(CommandKind::Healthcheck { test, flags })
        }
        "ONBUILD" => {
            no_flags(&instruction.flags)?;
            let Args::Sub(inner) = &instruction.args else {
                return Err("ONBUILD requires at least one argument".into());
            };
            let trigger = inner.keyword.to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
                "MAINTAINER" | "FROM" => Err(format!("{trigger} isn't allowed as an ONBUILD trigger")),
                _ => {
                    // Go's `parseOnBuild`: the trigger's text, and after it
                    // each heredoc's body and terminator, so that the trigger
                    // parses again on its own when a stage builds on this one.
                    let mut expression = inner.original.trim().to_string();
                    for heredoc in &instruction.heredocs {
                        expression.push('\n');
                        expression.push_str(&heredoc.content);
                        expression.push_str(&heredoc.name);
                    }
                    Ok(CommandKind::Onbuild(expression))
                }
            }
        }
        other => {
            const NAMES: &[&str] = &[
                "ADD",
                "ARG",
                "CMD",
                "COPY",
                "ENTRYPOINT",
                "ENV",
                "EXPOSE",
                "FROM",
                "HEALTHCHECK",
                "LABEL",
                "MAINTAINER",
                "ONBUILD",
                "RUN",
                "SHELL",
                "STOPSIGNAL",
                "USER",
                "VOLUME",
                "WORKDIR",
            ];
            let mut message = format!("unknown instruction: {}", instruction.keyword);
            if let Some(similar) = NAMES.iter().find(|name| similar(name, other)) {
                message.push_str(&format!(" (did you mean {similar}?)"));
            }
            Err(message)
        }
    }
}

fn transfer(keyword: &str, args: &[String], heredocs: &[Heredoc], flags: &Flags) -> Result<Transfer, String> {
    let (dest, sources) = args.split_last().expect("at least two arguments");
    let marker = |word: &str| {
        let digits = word.trim_start_matches(|c: char| c.is_ascii_digit());
        digits.strip_prefix("<<").map(|rest| rest.trim_start_matches('-').trim_matches(['"', '\'']).to_string())
    };
    if marker(dest).is_some_and(|name| !name.is_empty()) {
        return Err(format!("{keyword} cannot accept a heredoc as a destination"));
    }
    let mut paths = Vec::new();
    let mut inline = Vec::new();
    for source in sources {
        match marker(source).and_then(|name| heredocs.iter().find(|h| h.name == name)) {
            Some(heredoc) => {
                let content = if heredoc.chomp {
                    heredoc.content.lines().map(|l| l.trim_start_matches('\t')).collect::<Vec<_>>().join("\n")
                        + if heredoc.content.ends_with('\n') { "\n" } else { "" }
                } else {
                    heredoc.content.clone()
                };
                inline.push((heredoc.name.clone(), content, heredoc.expand));
            }
            None => paths.push(source.clone()),
        }
    }
    Ok(Transfer {
        sources: paths,
        inline,
        dest: dest.clone(),
        chown: flags.value("chown"),
        chmod: flags.value("chmod"),
        link: flags.bool("link").unwrap_or(false),
        exclude: flags.list("exclude"),
    })
}

impl Stages {
    /// The stage `target` names (the last stage without one), and every
    /// stage it needs, in Dockerfile order: those it starts `FROM`, copies
    /// `--from`, or mounts with `from=`, recursively.
    pub fn needed_by(&self, target: Option<&str>) -> Result<Vec<usize>, InstructionError> {
        let end = match target {
            None => self
                .stages
                .len()
                .checked_sub(1)
                .ok_or(InstructionError { line: 0, message: "no build stage".into() })?,
            Some(name) => self.stage_index(name).ok_or_else(|| InstructionError {
                line: 0,
                message: format!("target stage {name:?} could not be found"),
            })?,
        };
        let mut needed = vec![false; self.stages.len()];
        let mut pending = vec![end];
        while let Some(index) = pending.pop() {
            if std::mem::replace(&mut needed[index], true) {
                continue;
            }
            let stage = &self.stages[index];
            let mut refs = vec![stage.base.clone()];
            for command in &stage.commands {
                match &command.kind {
                    CommandKind::Copy { from: Some(from), .. } => refs.push(from.clone()),
                    CommandKind::Run { mounts, .. } => {
                        // The compiler's reader: keys in any case and quoted
                        // CSV fields, as the frontend's `detectRunMount`.
                        refs.extend(
                            mounts.iter().filter_map(|mount| crate::dockerfile::compile::mounts::mount_from(mount)),
                        );
                    }
                    _ => {}
                }
            }
            for reference in refs {
                // Only earlier stages can be referred to by name or index.
                if let Some(dependency) = self.stage_index(&reference).filter(|d| *d < index) {
                    pending.push(dependency);
                }
            }
        }
        Ok(needed.iter().enumerate().filter(|(_, n)| **n).map(|(i, _)| i).collect())
    }

    /// A stage by name (case-insensitive) or by index.
    pub fn stage_index(&self, reference: &str) -> Option<usize> {
        let lower = reference.to_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| reference.parse::<usize>().ok().filter(|i| *i < self.stages.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    fn stages_of(text: &str) -> Result<Stages, InstructionError> {
        stages(&parse(text).unwrap())
    }

    #[test]
    fn stages_commands_and_global_args() {
        let parsed = stages_of(
            "ARG BASE=busybox\nARG V\nFROM ${BASE} AS Base\nWORKDIR /app\n\
             FROM base AS deps\nCOPY --chown=1:1 --link requirements.txt ./\n\
             RUN --mount=type=cache,target=/c --mount=type=secret,id=s pip install\n\
             FROM base\nCOPY --from=deps /app /app\nCMD [\"python3\"]\nHEALTHCHECK --interval=5s CMD true\n",
        )
        .unwrap();
        assert_eq!(parsed.global_args, [("BASE".into(), Some("busybox".into())), ("V".into(), None)]);
        assert_eq!(parsed.stages.len(), 3);
        assert_eq!(parsed.stages[0].name.as_deref(), Some("base"), "stage names are lowercased");
        let CommandKind::Copy { transfer, .. } = &parsed.stages[1].commands[0].kind else { panic!() };
        assert_eq!((transfer.chown.as_deref(), transfer.link), (Some("1:1"), true));
        let CommandKind::Run { mounts, .. } = &parsed.stages[1].commands[1].kind else { panic!() };
        assert_eq!(mounts.len(), 2);
        assert_eq!(parsed.stages[2].commands[1].kind, CommandKind::Cmd(CommandLine::Exec(vec!["python3".into()])));
    }

    #[test]
    fn a_target_needs_only_its_stages() {
        let parsed = stages_of(
            "FROM busybox AS base\nFROM base AS deps\nRUN true\nFROM busybox AS tools\nRUN true\n\
             FROM base AS builder\nCOPY --from=deps /a /a\nRUN --mount=type=bind,from=tools,target=/t true\n\
             FROM base AS runner\nCOPY --from=builder /app /app\n",
        )
        .unwrap();
        assert_eq!(parsed.needed_by(Some("deps")).unwrap(), [0, 1]);
        assert_eq!(parsed.needed_by(Some("builder")).unwrap(), [0, 1, 2, 3]);
        assert_eq!(parsed.needed_by(None).unwrap(), [0, 1, 2, 3, 4]);
        let error = parsed.needed_by(Some("nope")).unwrap_err();
        assert_eq!(error.message, "target stage \"nope\" could not be found");
    }

    #[test]
    fn a_mount_from_is_read_as_the_frontend_reads_it() {
        // Keys in any case, and a quoted CSV field: the hand-split reader
        // this replaced missed both, leaving `tools` out of the build.
        for mount in ["type=bind,FROM=tools,target=/t", "type=bind,\"from=tools\",target=/t"] {
            let parsed = stages_of(&format!(
                "FROM busybox AS tools\nRUN true\nFROM busybox AS builder\nRUN --mount={mount} true\n"
            ))
            .unwrap();
            assert_eq!(parsed.needed_by(Some("builder")).unwrap(), [0, 1], "{mount}");
        }
    }

    #[test]
    fn an_onbuild_trigger_keeps_its_heredocs() {
        let parsed =
            stages_of("FROM a\nONBUILD RUN <<EOF\necho '$x'\nEOF\nONBUILD COPY <<-A /a\n\tbody\n\tA\n").unwrap();
        let triggers: Vec<&CommandKind> = parsed.stages[0].commands.iter().map(|c| &c.kind).collect();
        assert_eq!(
            triggers,
            [
                &CommandKind::Onbuild("RUN <<EOF\necho '$x'\nEOF".into()),
                &CommandKind::Onbuild("COPY <<-A /a\n\tbody\nA".into())
            ]
        );
    }

    #[test]
    fn bad_instructions_say_what_and_where() {
        let cases = [
            ("FROM a\nCOPY --form=x a b\n", 2, "unknown flag: --form (did you mean from?)"),
            ("FROM a\nCOPY --from a b\n", 2, "missing a value on flag: --from"),
            ("FROM a\nCOPY --link=maybe a b\n", 2, "expecting boolean value for flag --link, not: maybe"),
            ("FROM a\nCOPY --from=x --from=y a b\n", 2, "duplicate flag specified: --from"),
            (
                "FROM a\nCOPY onlyone\n",
                2,
                "COPY requires at least two arguments, but only one was provided. Destination could not be determined",
            ),
            ("FROM a b\n", 1, "FROM requires either one or three arguments"),
            (
                "FROM a AS 1x\n",
                1,
                "invalid name for build stage: \"1x\", name can't start with a number or contain symbols",
            ),
            ("FROM a\nFOO bar\n", 2, "unknown instruction: FOO (did you mean FROM?)"),
            ("FROM a\nXYZZY bar\n", 2, "unknown instruction: XYZZY"),
            ("RUN true\n", 1, "no build stage in current context"),
            ("FROM a\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
            ("FROM a\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments"),
            ("FROM a\nSHELL sh -c\n", 2, "SHELL requires the arguments to be in JSON form"),
        ];
        for (text, line, message) in cases {
            let error = stages_of(text).unwrap_err();
            assert_eq!((error.line, error.message.as_str()), (line, message), "{text:?}");
        }
    }

    #[test]
    fn signals_are_the_ones_moby_parses() {
        for yes in ["SIGTERM", "term", "9", "-1", "+3", "100", "SIGRTMIN", "RTMIN+15", "rtmax-14", "SIGRTMAX"] {
            assert!(is_signal(yes), "{yes}");
        }
        for no in ["0", "SIGNOPE", "UNUSED", "RTMIN+16", "RTMAX-15", "RTMIN+0", "RTMIN+01", "RTMIN++1", "", "SIG"] {
            assert!(!is_signal(no), "{no}");
        }
    }

    #[test]
    fn devices_are_read_as_the_frontends_parse_device() {
        let device = |name: &str, required: bool| Device { name: name.to_owned(), required };
        for (value, expected) in [
            ("vendor.com/gpu=all", device("vendor.com/gpu=all", false)),
            ("vendor.com/gpu=all,required", device("vendor.com/gpu=all", true)),
            ("name=vendor.com/gpu=0,required=false", device("vendor.com/gpu=0", false)),
            ("REQUIRED,gpu", device("gpu", true)),
            ("required=T,name=x", device("x", true)),
        ] {
            assert_eq!(parse_device(value).unwrap(), expected, "{value}");
        }
        for (value, message) in [
            ("a,b", "invalid field 'b' must be a key=value pair"),
            ("a,name=b", "device name already set to a"),
            ("a,required=yes", "invalid value for required: yes"),
            ("a,requird=1", "unexpected key 'requird' in 'requird=1' (did you mean required?)"),
            ("a,color=red", "unexpected key 'color' in 'color=red'"),
            ("", "failed to parse csv devices: EOF"),
        ] {
            assert_eq!(parse_device(value).unwrap_err().to_string(), message, "{value}");
        }
    }
}
