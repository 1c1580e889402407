//! Splitting an instruction's text into words, the three ways the parser
//! needs: leading `--flags`, the words of `ARG`/`ENV`/`LABEL`, and the shell
//! words in which heredoc markers are looked for.

/// Go's `unicode.IsSpace` (ASCII whitespace, U+0085, U+00A0 and the Z
/// category), which Rust's `char::is_whitespace` matches.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]+` (no newline).
pub(crate) fn is_split_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits `text` at the first run of `[\t\v\f\r ]`.
pub(crate) fn split_once_ws(text: &str) -> (&str, Option<&str>) {
    match text.find(is_split_space) {
        Some(at) => {
            let rest = text[at..].trim_start_matches(is_split_space);
            (&text[..at], Some(rest))
        }
        None => (text, None),
    }
}

/// Splits `text` at every run of `[\t\v\f\r ]` (an empty text gives one
/// empty piece, as Go's `Regexp.Split`).
pub(crate) fn split_ws(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if is_split_space(c) {
            pieces.push(&text[start..at]);
            let mut end = at + c.len_utf8();
            while let Some(&(next_at, next)) = chars.peek() {
                if !is_split_space(next) {
                    break;
                }
                end = next_at + next.len_utf8();
                chars.next();
            }
            start = end;
        }
    }
    pieces.push(&text[start..]);
    pieces
}

#[derive(PartialEq)]
enum Phase {
    Spaces,
    Word,
    Quote(char),
}

/// The leading `--flag` words of an instruction's arguments and the text
/// after them. Quotes are removed inside flags and the escape character
/// escapes the next character; a lone `--` ends the flags.
pub(crate) fn leading_flags(line: &str, escape: char) -> (String, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    loop {
        let at_end = i == chars.len();
        if phase == Phase::Spaces {
            if at_end {
                return (String::new(), words);
            }
            let (at, c) = chars[i];
            if is_space(c) {
                i += 1;
                continue;
            }
            let dash_dash = c == '-' && chars.get(i + 1).is_some_and(|(_, next)| *next == '-');
            if !dash_dash {
                return (line[at..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            return (String::new(), words);
        }
        let (at, mut c) = chars[i];
        match phase {
            Phase::Word => {
                if is_space(c) {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (line[at..].to_string(), words);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                    i += 1;
                    continue;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue;
                    }
                    i += 1;
                    c = chars[i].1;
                }
                word.push(c);
            }
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                    i += 1;
                    continue;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                    i += 1;
                    c = chars[i].1;
                }
                word.push(c);
            }
            Phase::Spaces => unreachable!("handled above"),
        }
        i += 1;
    }
}

/// The words of `ARG`, `ENV` and `LABEL` arguments: whitespace separates
/// them except inside quotes; quotes and escapes are kept in the words (the
/// frontend's expansion removes them later); an escape at the very end is
/// dropped.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    loop {
        let at_end = i == chars.len();
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(chars[i]) {
                i += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        let mut c = chars[i];
        match phase {
            Phase::Word => {
                if is_space(c) {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                    c = chars[i];
                }
                word.push(c);
            }
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                }
                if c == escape && quote != '\'' {
                    if i + 1 == chars.len() {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                    c = chars[i];
                }
                word.push(c);
            }
            Phase::Spaces => unreachable!("handled above"),
        }
        i += 1;
    }
    words
}

/// Shell words of a line with their quotes and escapes kept, where heredoc
/// markers (`<<EOF`, `<<-'EOF'`, `3<<EOF`) are looked for.
pub(crate) fn raw_shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == q {
                    quote = None;
                } else if c == '\\' && q == '"' {
                    word.extend(chars.next());
                }
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None => {
                word.push(c);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == '\\' {
                    word.extend(chars.next());
                }
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A shell word with its quotes removed (and escapes resolved), and whether
/// any part of it was quoted.
pub(crate) fn unquote(word: &str) -> (String, bool) {
    let mut out = String::new();
    let mut quoted = false;
    let mut quote: Option<char> = None;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '\\' => out.extend(chars.next()),
            Some(_) => out.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                quoted = true;
            }
            None if c == '\\' => {
                quoted = true;
                out.extend(chars.next());
            }
            None => out.push(c),
        }
    }
    (out, quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_stop_at_the_first_word_without_dashes() {
        let (rest, flags) = leading_flags("--mount=type=cache,target=/x --network=none echo hi", '\\');
        assert_eq!(flags, ["--mount=type=cache,target=/x", "--network=none"]);
        assert_eq!(rest, "echo hi");
        let (rest, flags) = leading_flags("--from=\"a b\" -- --not-a-flag", '\\');
        assert_eq!(flags, ["--from=a b"]);
        assert_eq!(rest, " --not-a-flag");
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(parse_words(r#"a="b c" d=e\ f"#, '\\'), [r#"a="b c""#, r"d=e\ f"]);
        assert_eq!(parse_words("x ''", '\\'), ["x", "''"]);
    }

    #[test]
    fn whitespace_splits_as_go_regexp() {
        assert_eq!(split_ws("a \t b"), ["a", "b"]);
        assert_eq!(split_ws(""), [""]);
        assert_eq!(split_once_ws("RUN  echo hi"), ("RUN", Some("echo hi")));
    }

    #[test]
    fn heredoc_words() {
        assert_eq!(raw_shell_words(r#"cat <<"EOF" > 'a b'"#), ["cat", r#"<<"EOF""#, ">", "'a b'"]);
        assert_eq!(unquote(r#""EOF""#), ("EOF".to_string(), true));
        assert_eq!(unquote("EOF"), ("EOF".to_string(), false));
    }
}
