//! Lines to instructions: directives, comments, continuations, heredocs,
//! flags and argument forms (see the module's documentation).

use super::words::{self, is_space};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The instructions in order.
    pub instructions: Vec<Instruction>,
    /// The parser directives (`syntax`, `escape`, `check`): name, value, line.
    pub directives: Vec<(String, String, usize)>,
    /// The escape character (`\` unless `# escape=` chose `` ` ``).
    pub escape: char,
    /// What the parser tolerates but warns about.
    pub warnings: Vec<Warning>,
}

/// A parser warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub message: String,
    pub line: usize,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The keyword as written (`RUN`, `run`).
    pub keyword: String,
    /// Leading `--flags`, quotes removed (`--mount=type=cache,target=/x`).
    pub flags: Vec<String>,
    pub args: Args,
    /// Whether the arguments are in JSON form (`["a", "b"]`).
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// The instruction's text with continuations joined.
    pub original: String,
    /// Lines (1-based) it starts and ends on, heredoc bodies included.
    pub start_line: usize,
    pub end_line: usize,
    /// The comment lines right above it.
    pub comments: Vec<String>,
}

/// An instruction's arguments in the form its keyword takes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Args {
    /// Nothing after the keyword.
    None,
    /// Words: a JSON array, whitespace-separated words (`FROM`, `EXPOSE`,
    /// `COPY` in shell form) or `ARG`'s names.
    Words(Vec<String>),
    /// The rest of the line as one string (`RUN`/`CMD` in shell form,
    /// `USER`, `WORKDIR`).
    Text(String),
    /// `ENV`/`LABEL`: key, value, and `=` or empty for the old `KEY value`
    /// form.
    KeyValues(Vec<(String, String, String)>),
    /// `HEALTHCHECK`: its type (`CMD`, `NONE`) and the command's arguments.
    Health { kind: String, command: Box<Args> },
    /// `ONBUILD`: the instruction it registers.
    Sub(Box<Instruction>),
    /// An instruction the parser does not know (the frontend reports it).
    Unknown,
}

/// A heredoc of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// The body, each line with its newline; leading tabs are kept here
    /// and removed by the frontend when `chomp` is set.
    pub content: String,
    /// Variables are expanded in the body (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped.
    pub chomp: bool,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when none.
    pub file_descriptor: u32,
}

/// A Dockerfile that cannot be parsed: what is wrong and on which lines.
/// The message is the frontend's, which carries the lines beside it (as
/// source locations), not in the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub line: usize,
    pub end_line: usize,
}

/// The longest line the frontend reads, in bytes without its newline: Go's
/// `bufio.Scanner` holds at most `bufio.MaxScanTokenSize` (64 KiB) bytes, a
/// line's newline included, and stops at a longer line.
pub const MAX_LINE: usize = 64 * 1024 - 1;

/// Keywords whose arguments may hold heredocs.
const HEREDOC_KEYWORDS: &[&str] = &["run", "copy", "add"];
const DIRECTIVES: &[&str] = &["syntax", "escape", "check"];

/// The directive parser: only comment lines at the very top count, each
/// directive once; the first other line ends them.
#[derive(Default)]
struct Directives {
    done: bool,
    seen: Vec<(String, String, usize)>,
    escape: Option<char>,
}

impl Directives {
    /// Whether `line` (leading whitespace already trimmed) is a directive.
    fn take(&mut self, line: &str, number: usize) -> Result<bool, String> {
        if self.done {
            return Ok(false);
        }
        let Some(body) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(false);
        };
        let body = body.trim_start_matches(is_space);
        let Some((key, value)) = directive(body) else {
            self.done = true;
            return Ok(false);
        };
        let key = key.to_ascii_lowercase();
        if !DIRECTIVES.contains(&key.as_str()) {
            self.done = true;
            return Ok(false);
        }
        if self.seen.iter().any(|(k, _, _)| *k == key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        if key == "escape" {
            match value {
                "`" => self.escape = Some('`'),
                "\\" => self.escape = Some('\\'),
                other => return Err(format!("invalid escape token '{other}' does not match ` or \\")),
            }
        }
        self.seen.push((key, value.to_string(), number));
        Ok(true)
    }
}

/// `key = value` with a key of a letter then letters or digits; the value
/// trimmed.
fn directive(body: &str) -> Option<(&str, &str)> {
    let (key, value) = body.split_once('=')?;
    let key = key.trim_end_matches(is_space);
    let mut chars = key.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = value.trim_matches(is_space);
    (!value.is_empty()).then_some((key, value))
}

fn is_comment(line: &str) -> bool {
    line.trim_start_matches(is_space).starts_with('#')
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Removes a continuation escape at the end of `line`: `Some(rest)` when
/// the line continues. An escape preceded by another escape does not
/// continue it unless it stands alone (as BuildKit's regular expression).
fn continuation(line: &str, escape: char) -> Option<String> {
    let trimmed = line.trim_end_matches([' ', '\t']);
    let before = trimmed.strip_suffix(escape)?;
    if before.is_empty() {
        return Some(String::new());
    }
    if before.ends_with(escape) {
        return None;
    }
    Some(before.to_string())
}

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let with_bom = text.len();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Go strips the byte-order mark after scanning: it counts for the limit.
    let bom = with_bom - text.len();
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    // The frontend's scanner stops at the first line over its limit: the
    // lines before it are parsed as if the file ended there (an instruction
    // or heredoc it cuts short fails as such), then the scan's error counts.
    let too_long = lines
        .iter()
        .enumerate()
        .position(|(i, line)| line.strip_suffix('\n').unwrap_or(line).len() + if i == 0 { bom } else { 0 } > MAX_LINE);
    if let Some(at) = too_long {
        lines.truncate(at);
    }
    let mut directives = Directives::default();
    let mut instructions = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut index = 0;
    let fail = |message: String, line: usize, end_line: usize| ParseError { message, line, end_line };
    while index < lines.len() {
        let raw = lines[index];
        if is_comment(raw) {
            let comment = raw.trim_start_matches(is_space)[1..].trim_matches(is_space).to_string();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment);
            }
        }
        let number = index + 1;
        let trimmed = trim_newline(raw).trim_start_matches(is_space);
        // A directive's error is placed where Go's scanner count stands,
        // the line before it (none for the first line), as the daemon does.
        let is_directive = directives.take(trimmed, number).map_err(|m| fail(m, number - 1, 0))?;
        if is_directive {
            comments.pop();
        }
        let escape = directives.escape.unwrap_or('\\');
        let content = if is_comment(trimmed) { "" } else { trimmed };
        index += 1;
        let start_line = number;
        let (mut line, mut ended) = match continuation(content, escape) {
            Some(rest) => (rest, false),
            None => (content.to_string(), true),
        };
        if ended && line.is_empty() {
            continue;
        }
        let mut empty_continuation = false;
        while !ended && index < lines.len() {
            let raw = lines[index];
            let next = trim_newline(raw);
            directives.take(next, index + 1).map_err(|m| fail(m, index, 0))?;
            index += 1;
            if is_comment(raw) {
                continue;
            }
            if next.trim_start_matches(is_space).is_empty() {
                empty_continuation = true;
                continue;
            }
            match continuation(next, escape) {
                Some(rest) => line.push_str(&rest),
                None => {
                    line.push_str(next);
                    ended = true;
                }
            }
        }
        if empty_continuation {
            warnings.push(Warning { message: format!("Empty continuation line found in: {line}"), line: index });
        }
        let mut instruction = instruction_from_line(&line, escape, std::mem::take(&mut comments))
            .map_err(|m| fail(m, start_line, index))?;
        if may_have_heredocs(&instruction) && line.contains("<<") {
            for mut heredoc in heredocs_in(&line) {
                let mut terminated = false;
                while index < lines.len() {
                    let body_line = lines[index];
                    index += 1;
                    let mut candidate = trim_newline(body_line);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(body_line);
                }
                if !terminated {
                    return Err(fail("unterminated heredoc".into(), start_line, index));
                }
                instruction.heredocs.push(heredoc);
            }
        }
        instruction.start_line = start_line;
        instruction.end_line = index;
        instructions.push(instruction);
    }
    if instructions.is_empty() {
        return Err(fail("file with no instructions".into(), lines.len(), 0));
    }
    if too_long.is_some() {
        return Err(fail(format!("dockerfile line greater than max allowed size of {MAX_LINE}"), lines.len(), 0));
    }
    Ok(Dockerfile { instructions, directives: directives.seen, escape: directives.escape.unwrap_or('\\'), warnings })
}

fn may_have_heredocs(instruction: &Instruction) -> bool {
    let inner = match &instruction.args {
        Args::Sub(inner) if instruction.keyword.eq_ignore_ascii_case("onbuild") => inner.as_ref(),
        _ => instruction,
    };
    HEREDOC_KEYWORDS.contains(&inner.keyword.to_ascii_lowercase().as_str()) && !inner.json
}

/// The heredoc markers among a line's shell words (`<<EOF`, `<<-"EOF"`,
/// `2<<EOF`), in order.
fn heredocs_in(line: &str) -> Vec<Heredoc> {
    let mut found = Vec::new();
    for word in words::raw_shell_words(line) {
        let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
        let Some(rest) = word[digits.len()..].strip_prefix("<<") else { continue };
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let rest = rest.trim_start();
        if rest.is_empty() || rest.contains('<') {
            continue;
        }
        let (name, quoted) = words::unquote(rest);
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            continue;
        }
        found.push(Heredoc {
            name,
            content: String::new(),
            expand: !quoted,
            chomp,
            file_descriptor: digits.parse().unwrap_or(0),
        });
    }
    found
}

/// One instruction from its joined line.
fn instruction_from_line(line: &str, escape: char, comments: Vec<String>) -> Result<Instruction, String> {
    let (keyword, rest) = words::split_once_ws(line.trim_matches(is_space));
    let (args_text, flags) = match rest {
        Some(rest) => words::leading_flags(rest, escape),
        None => (String::new(), Vec::new()),
    };
    let args_text = args_text.trim_matches(is_space).to_string();
    let (args, json) = match keyword.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => maybe_json_list(&args_text)?,
        "arg" => (words_or_none(words::parse_words(&args_text, escape)), false),
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(&args_text)?,
        "env" | "label" => {
            let upper = keyword.to_ascii_uppercase();
            (key_values(&args_text, if upper == "ENV" { "ENV" } else { "LABEL" }, escape)?, false)
        }
        "expose" | "from" => (whitespace_words(&args_text), false),
        "healthcheck" => health(&args_text)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (text_or_none(&args_text), false),
        "onbuild" => {
            if args_text.is_empty() {
                (Args::None, false)
            } else {
                (Args::Sub(Box::new(instruction_from_line(&args_text, escape, Vec::new())?)), false)
            }
        }
        _ => (Args::Unknown, false),
    };
    Ok(Instruction {
        keyword: keyword.to_string(),
        flags,
        args,
        json,
        heredocs: Vec::new(),
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        comments,
    })
}

fn words_or_none(words: Vec<String>) -> Args {
    if words.is_empty() {
        Args::None
    } else {
        Args::Words(words)
    }
}

fn text_or_none(text: &str) -> Args {
    if text.is_empty() {
        Args::None
    } else {
        Args::Text(text.to_string())
    }
}

fn whitespace_words(text: &str) -> Args {
    if text.is_empty() {
        return Args::None;
    }
    Args::Words(words::split_ws(text).into_iter().map(str::to_string).collect())
}

/// A JSON array of strings: `Ok(None)` when the text is not a JSON array at
/// all; an error when it is one with something other than strings.
fn json_array(text: &str) -> Result<Option<Vec<String>>, String> {
    let text = text.trim_start_matches(is_space);
    if !text.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(text) else { return Ok(None) };
    values
        .into_iter()
        .map(|value| match value {
            serde_json::Value::String(s) => Ok(s),
            _ => Err("when using JSON array syntax, arrays must be comprised of strings only".to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn maybe_json(text: &str) -> Result<(Args, bool), String> {
    if text.is_empty() {
        return Ok((Args::None, false));
    }
    Ok(match json_array(text)? {
        Some(words) => (Args::Words(words), true),
        None => (Args::Text(text.to_string()), false),
    })
}

fn maybe_json_list(text: &str) -> Result<(Args, bool), String> {
    Ok(match json_array(text)? {
        Some(words) => (Args::Words(words), true),
        None => (whitespace_words(text), false),
    })
}

/// `ENV`/`LABEL` arguments: `K=V K2=V2` or the old `K V` form.
fn key_values(text: &str, keyword: &str, escape: char) -> Result<Args, String> {
    let words = words::parse_words(text, escape);
    let Some(first) = words.first() else { return Ok(Args::None) };
    if !first.contains('=') {
        let (key, value) = words::split_once_ws(text);
        let Some(value) = value else { return Err(format!("{keyword} must have two arguments")) };
        return Ok(Args::KeyValues(vec![(key.to_string(), value.to_string(), String::new())]));
    }
    let mut pairs = Vec::new();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!("Syntax error - can't find = in {word:?}. Must be of the form: name=value"));
        };
        pairs.push((key.to_string(), value.to_string(), "=".to_string()));
    }
    Ok(Args::KeyValues(pairs))
}

/// `HEALTHCHECK [--flags] TYPE [command]`.
fn health(text: &str) -> Result<(Args, bool), String> {
    let split = text.find(|c: char| c.is_ascii() && is_space(c)).unwrap_or(text.len());
    if split == 0 {
        return Ok((Args::None, false));
    }
    let rest = text[split..].trim_start_matches(|c: char| c.is_ascii() && is_space(c));
    let (command, json) = maybe_json(rest)?;
    Ok((Args::Health { kind: text[..split].to_string(), command: Box::new(command) }, json))
}

impl Instruction {
    /// The instruction as BuildKit's parser dumps its tree:
    /// `(keyword ["--flags"] "arg" ...)`, strings quoted as Go does.
    pub fn dump(&self) -> String {
        format!("({})", self.dump_inner())
    }

    fn dump_inner(&self) -> String {
        let mut out = self.keyword.to_lowercase();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            out.push_str(&format!(" [{}]", flags.join(" ")));
        }
        let mut push = |value: &str| {
            out.push(' ');
            out.push_str(&go_quote(value));
        };
        match &self.args {
            Args::None => {}
            // An unknown instruction's tree has one empty node.
            Args::Unknown => push(""),
            Args::Words(words) => words.iter().for_each(|w| push(w)),
            Args::Text(text) => push(text),
            Args::KeyValues(pairs) => {
                for (key, value, separator) in pairs {
                    push(key);
                    push(value);
                    push(separator);
                }
            }
            Args::Health { kind, command } => {
                push(kind);
                match command.as_ref() {
                    Args::Words(words) => words.iter().for_each(|w| push(w)),
                    Args::Text(text) => push(text),
                    _ => {}
                }
            }
            Args::Sub(inner) => {
                out.push(' ');
                out.push_str(&inner.dump());
            }
        }
        out
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                let code = c as u32;
                if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
