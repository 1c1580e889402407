//! Variable expansion and word splitting with the Dockerfile frontend's
//! shell lexer rules: `$V`, `${V}`, `${V:-x}`, `${V-x}`, `${V:+x}`,
//! `${V+x}`, `${V:?msg}`, `${V?msg}`, `${V#p}`, `${V##p}`, `${V%p}`,
//! `${V%%p}`, `${V/a/b}`, `${V//a/b}`, single and double quotes, and the
//! escape character. Tested against BuildKit's own corpus (`envVarTest`,
//! `wordsTest`).

use std::collections::BTreeMap;

/// The longest text one expansion may give, in bytes. The daemon's
/// frontend has no bound of its own (an `ARG` that doubles itself 40 times
/// takes all its memory), and no value longer than its 16 MiB gRPC messages
/// can reach an image config or a build step anyway.
pub const MAX_EXPANSION: usize = 16 << 20;

/// Where variables come from: a name's value, `None` when unset.
pub trait Env {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// A word that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {source_text:?}: {problem}")]
pub struct ExpandError {
    pub source_text: String,
    pub problem: ExpandProblem,
}

/// What is wrong with a word, in the frontend's words (`shell.Lex`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandProblem {
    /// A quote or `${` left open: what was looked for (`single-quote`,
    /// `double-quote` or the closing character).
    #[error("unexpected end of statement while looking for matching {0}")]
    UnexpectedEnd(String),
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${NAME?text}` or `${NAME:?text}` on an unset (or empty) variable.
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    /// The result would be over [`MAX_EXPANSION`] bytes.
    #[error(
        "the expanded text would be {0} bytes, over the limit of {limit} (16 MiB, the largest message the daemon takes)",
        limit = MAX_EXPANSION
    )]
    TooLarge(usize),
    /// A `${NAME#pattern}`-style pattern that does not read.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern { pattern: String, reason: String },
}

/// The lexer's settings (BuildKit's `Lex`).
#[derive(Debug, Clone)]
pub struct Lexer {
    pub escape: char,
    /// Keep quote characters in the result.
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Leave `$UNSET` and `${UNSET...}` as written.
    pub skip_unset_env: bool,
    /// Treat quote characters as ordinary ones: `'$A'` expands `$A` and
    /// keeps the quotes (BuildKit's `SkipProcessQuotes`, which the frontend
    /// sets to expand the body of an unquoted `COPY <<EOF` heredoc).
    pub skip_process_quotes: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer { escape, raw_quotes: false, raw_escapes: false, skip_unset_env: false, skip_process_quotes: false }
    }

    /// `word` expanded, as one string.
    pub fn expand(&self, word: &str, env: &dyn Env) -> Result<String, ExpandError> {
        self.run(word, env).map(|(text, _)| text)
    }

    /// `word` expanded and split into words where unquoted whitespace is.
    pub fn expand_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        self.run(word, env).map(|(_, words)| words)
    }

    fn run(&self, word: &str, env: &dyn Env) -> Result<(String, Vec<String>), ExpandError> {
        let mut scan = Scan { lexer: self, chars: word.chars().collect(), at: 0, env, raw_escapes: self.raw_escapes };
        scan.until(None, self.raw_escapes).map_err(|problem| ExpandError { source_text: word.to_string(), problem })
    }
}

struct Scan<'a> {
    lexer: &'a Lexer,
    chars: Vec<char>,
    at: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
}

/// Words being collected: unquoted whitespace ends one.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

type Step<T> = Result<T, ExpandProblem>;

impl Scan<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.at += 1;
        }
        c
    }

    /// Reads up to `stop` (or the end), expanding as it goes.
    fn until(&mut self, stop: Option<char>, raw_escapes: bool) -> Step<(String, Vec<String>)> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.until_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn until_inner(&mut self, stop: Option<char>) -> Step<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.dollar()?;
                    check_size(result.len() + value.len())?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '<' => {
                    let value = self.possible_heredoc();
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '\'' if !self.lexer.skip_process_quotes => {
                    let value = self.single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' if !self.lexer.skip_process_quotes => {
                    let value = self.double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    let mut c = self.next().expect("peeked");
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        match self.next() {
                            None => break,
                            Some(next) => {
                                c = next;
                                words.add_raw_char(c);
                            }
                        }
                    } else {
                        words.add_char(c);
                    }
                    result.push(c);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(ExpandProblem::UnexpectedEnd(stop.to_string()));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Step<String> {
        let mut out = String::new();
        let open = self.next().expect("peeked");
        if self.lexer.raw_quotes {
            out.push(open);
        }
        loop {
            match self.next() {
                None => return Err(ExpandProblem::UnexpectedEnd("single-quote".into())),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Step<String> {
        let mut out = String::new();
        let open = self.next().expect("peeked");
        if self.lexer.raw_quotes {
            out.push(open);
        }
        loop {
            match self.peek() {
                None => return Err(ExpandProblem::UnexpectedEnd("double-quote".into())),
                Some('"') => {
                    self.next();
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    check_size(out.len() + value.len())?;
                    out.push_str(&value);
                }
                Some(_) => {
                    let mut c = self.next().expect("peeked");
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.lexer.escape => {
                                c = self.next().expect("peeked");
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.env.get(name).map(str::to_string)
    }

    fn dollar(&mut self) -> Step<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(ExpandProblem::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandProblem::BadSubstitution),
            _ => {}
        }
        let name = self.name();
        let Some(mut c) = self.next() else { return Err(ExpandProblem::MissingBrace) };
        let mut modifier = c.to_string();
        let mut null_is_unset = false;
        match c {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if c == ':' {
                    null_is_unset = true;
                    c = self.next().unwrap_or('\0');
                    modifier.push(c);
                }
                let raw_escapes = c == '#' || c == '%';
                if null_is_unset && raw_escapes {
                    return Err(ExpandProblem::UnsupportedModifier(modifier));
                }
                let word = match self.until(Some('}'), raw_escapes) {
                    Ok((word, _)) => word,
                    Err(_) if self.peek().is_none() => return Err(ExpandProblem::MissingBrace),
                    Err(error) => return Err(error),
                };
                let value = self.lookup(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let empty_or_unset = value.as_deref().is_none_or(|v| null_is_unset && v.is_empty());
                match c {
                    '-' => Ok(if empty_or_unset { word } else { value.unwrap_or_default() }),
                    '+' => Ok(if empty_or_unset { String::new() } else { word }),
                    '?' => match value {
                        None => Err(ExpandProblem::Required {
                            name,
                            message: if word.is_empty() { "is not allowed to be unset".into() } else { word },
                        }),
                        Some(v) if null_is_unset && v.is_empty() => Err(ExpandProblem::Required {
                            name,
                            message: if word.is_empty() { "is not allowed to be empty".into() } else { word },
                        }),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let (greedy, pattern) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word.clone()),
                        };
                        let value = value.unwrap_or_default();
                        if c == '%' {
                            trim_suffix(&pattern, &value, greedy)
                        } else {
                            trim_prefix(&pattern, &value, greedy)
                        }
                    }
                    _ => Err(ExpandProblem::UnsupportedModifier(modifier)),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.until(Some('/'), true) {
                    Ok((pattern, _)) => pattern,
                    Err(_) if self.peek().is_none() => return Err(ExpandProblem::MissingSlash),
                    Err(error) => return Err(error),
                };
                let replacement = match self.until(Some('}'), true) {
                    Ok((replacement, _)) => replacement,
                    Err(_) if self.peek().is_none() => return Err(ExpandProblem::MissingBrace),
                    Err(error) => return Err(error),
                };
                let Some(value) = self.lookup(&name) else {
                    if self.lexer.skip_unset_env {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return replace(&pattern, &replacement, "", replace_all);
                };
                replace(&pattern, &replacement, &value, replace_all)
            }
            _ => Err(ExpandProblem::UnsupportedModifier(modifier)),
        }
    }
}

/// Refuses a result over [`MAX_EXPANSION`] before it is made.
fn check_size(len: usize) -> Step<()> {
    if len > MAX_EXPANSION {
        return Err(ExpandProblem::TooLarge(len));
    }
    Ok(())
}

/// A shell pattern (`*`, `?`, `\` escapes) as a regular expression.
fn pattern_regex(pattern: &str, greedy: bool, anchored: bool) -> Step<regex::Regex> {
    let invalid = |reason: String| ExpandProblem::InvalidPattern { pattern: pattern.to_owned(), reason };
    let mut out = String::new();
    if anchored {
        out.push('^');
    }
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(if greedy { ".*" } else { ".*?" }),
            '?' => out.push('.'),
            '\\' => {
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(next @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(next);
                    }
                    Some(other) => return Err(invalid(format!("invalid escape '\\{other}'"))),
                    None => return Err(invalid("invalid escape '\\'".into())),
                }
            }
            c => {
                if "[]{}.+()|^$".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
    // Go's regexp lets `.` match any character but a newline, as here.
    regex::Regex::new(&out).map_err(|e| invalid(e.to_string()))
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Step<String> {
    let re = pattern_regex(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// `pattern` reversed, keeping each `\x` escape in front of its character.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; chars.len()];
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        let target = last - i;
        if chars[i] == '\\' && i != last {
            out[target - 1] = chars[i];
            out[target] = chars[i + 1];
            i += 2;
        } else {
            out[target] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Step<String> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

fn replace(pattern: &str, replacement: &str, value: &str, all: bool) -> Step<String> {
    let re = pattern_regex(pattern, true, false)?;
    // Go's ReplaceAllString expands `$1`-style references in the
    // replacement, as `Captures::expand` does; the result is built match by
    // match so that a replacement that multiplies the text stops at the bound.
    let mut out = String::new();
    let mut last = 0;
    for captures in re.captures_iter(value).take(if all { usize::MAX } else { 1 }) {
        let whole = captures.get(0).expect("the whole match");
        out.push_str(&value[last..whole.start()]);
        captures.expand(replacement, &mut out);
        check_size(out.len())?;
        last = whole.end();
    }
    out.push_str(&value[last..]);
    check_size(out.len())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus(name: &str) -> String {
        let output = std::process::Command::new("go").args(["env", "GOMODCACHE"]).output().expect("go is installed");
        let dir = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
            .join("github.com/moby/buildkit@v0.32.2/frontend/dockerfile/shell");
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
    }

    fn env(pairs: &[&str]) -> BTreeMap<String, String> {
        pairs.iter().map(|p| p.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap()).collect()
    }

    #[test]
    fn buildkits_expansion_corpus() {
        let lexer = Lexer::new('\\');
        let env = env(&["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
        let mut failures = Vec::new();
        let mut checked = 0;
        for (number, line) in corpus("envVarTest").lines().enumerate() {
            let line = line.trim();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split('|').collect();
            assert_eq!(parts.len(), 3, "line {}", number + 1);
            let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
            if platform == "W" {
                continue;
            }
            checked += 1;
            let result = lexer.expand(source, &env);
            let ok = match (&result, expected) {
                (Err(_), "error") => true,
                (Ok(ours), expected) => ours == expected,
                _ => false,
            };
            if !ok {
                failures.push(format!("line {}: {source:?} -> {result:?}, expected {expected:?}", number + 1));
            }
        }
        assert!(checked > 150, "{checked}");
        assert!(failures.is_empty(), "{} of {checked}:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn buildkits_words_corpus() {
        let lexer = Lexer::new('\\');
        let mut vars: Vec<String> = Vec::new();
        let mut failures = Vec::new();
        for (number, line) in corpus("wordsTest").lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("ENV ") {
                vars.push(rest.trim_start_matches(' ').to_string());
                continue;
            }
            let (test, expected) = line.split_once('|').unwrap();
            let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
            let env: BTreeMap<String, String> =
                vars.iter().map(|v| v.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap()).collect();
            let result = lexer.expand_words(test.trim(), &env).unwrap_or_else(|_| vec!["error".into()]);
            if result != expected {
                failures.push(format!("line {}: {test:?} -> {result:?}, expected {expected:?}", number + 1));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn heredoc_bodies_expand_with_quotes_as_plain_characters() {
        let mut lexer = Lexer::new('\\');
        lexer.skip_process_quotes = true;
        let env = env(&["name=world"]);
        assert_eq!(
            lexer.expand("'${name}' \"$name\" \\$name a\\\\b ${name:-'x'}\n", &env).unwrap(),
            "'world' \"world\" $name a\\b world\n"
        );
        // An unbalanced quote is just a character.
        assert_eq!(lexer.expand("it's $name", &env).unwrap(), "it's world");
    }

    #[test]
    fn expansions_stop_at_the_bound() {
        let lexer = Lexer::new('\\');
        let half = "x".repeat(MAX_EXPANSION / 2);
        let env = env(&[&format!("A={half}")]);
        assert_eq!(lexer.expand("${A}${A}", &env).unwrap().len(), MAX_EXPANSION);
        for word in ["${A}${A}${A}", "\"$A$A$A\"", "${B:-$A$A$A}", "${A//x/yyy}"] {
            // Never the value itself in a message: it is megabytes long.
            let Err(error) = lexer.expand(word, &env) else { panic!("{word} expands") };
            assert!(matches!(error.problem, ExpandProblem::TooLarge(_)), "{word}: {error}");
            assert!(error.to_string().contains("over the limit of 16777216"), "{word}: {error}");
        }
        assert_eq!(lexer.expand("${A/x/yyy}", &env).map(|v| v.len()), Ok(MAX_EXPANSION / 2 + 2));
    }

    #[test]
    fn required_variables_say_why() {
        let lexer = Lexer::new('\\');
        let error = lexer.expand("${VAR:?message here$ARG}", &env(&["VAR=", "ARG=x"])).unwrap_err();
        assert!(error.to_string().contains("VAR: message herex"), "{error}");
        assert_eq!(lexer.expand("${VAR?m}", &env(&["VAR="])).unwrap(), "");
    }
}
