//! Strings, paths and regular expressions: go-cty's `string.go`,
//! `string_replace.go`, `format.go` and `regexp.go`, buildx's `basename`,
//! `dirname`, `sanitize` and `homedir`. Lengths and offsets count grapheme
//! clusters, as go-cty does (`strlen("é")` is 1 however it is encoded).

use hcl::eval::FuncDef;
use hcl::Value;
use unicode_segmentation::UnicodeSegmentation;

use super::{fixed, integer, list, number_text, string, to_string, variadic, Result};

/// Go's `unicode.ToUpper`/`ToLower` map one character to one character;
/// where Rust's full mapping gives several (`ß` to `SS`), keep it.
fn map_chars(text: &str, map: fn(char) -> Option<char>) -> String {
    text.chars().map(|c| map(c).unwrap_or(c)).collect()
}

fn single<I: Iterator<Item = char>>(mut chars: I) -> Option<char> {
    let first = chars.next()?;
    chars.next().is_none().then_some(first)
}

pub(super) fn upper() -> FuncDef {
    fixed(1, |a| Ok(Value::from(map_chars(&string(&a, 0)?, |c| single(c.to_uppercase())))))
}

pub(super) fn lower() -> FuncDef {
    // `İ` is the one letter whose full lower case is two characters; its
    // simple mapping (Go's) is `i`.
    fixed(1, |a| {
        Ok(Value::from(map_chars(
            &string(&a, 0)?,
            |c| if c == '\u{130}' { Some('i') } else { single(c.to_lowercase()) },
        )))
    })
}

/// Go's `strings.Title`: a letter after a separator is title-cased.
pub(super) fn title() -> FuncDef {
    fixed(1, |a| {
        let mut out = String::new();
        let mut after_separator = true;
        for c in string(&a, 0)?.chars() {
            if after_separator {
                out.push(title_case(c));
            } else {
                out.push(c);
            }
            after_separator = is_title_separator(c);
        }
        Ok(Value::from(out))
    })
}

/// Go's `strings.Title` word boundaries: in ASCII anything but letters,
/// digits and `_`; beyond it only spaces.
fn is_title_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    !c.is_alphanumeric() && c.is_whitespace()
}

/// Go's `unicode.ToTitle`: the upper case, except for the four digraphs
/// that have a title case of their own (`ǆ` gives `ǅ`, not `Ǆ`).
fn title_case(c: char) -> char {
    match c {
        '\u{01C4}'..='\u{01C6}' => '\u{01C5}',
        '\u{01C7}'..='\u{01C9}' => '\u{01C8}',
        '\u{01CA}'..='\u{01CC}' => '\u{01CB}',
        '\u{01F1}'..='\u{01F3}' => '\u{01F2}',
        c => single(c.to_uppercase()).unwrap_or(c),
    }
}

pub(super) fn strlen() -> FuncDef {
    fixed(1, |a| Ok(Value::from(string(&a, 0)?.graphemes(true).count())))
}

/// `substr(string, offset, length)`: a negative offset counts from the
/// end, a negative length takes the rest.
pub(super) fn substr() -> FuncDef {
    fixed(3, |a| {
        let text = string(&a, 0)?;
        let clusters: Vec<&str> = text.graphemes(true).collect();
        let (mut offset, length) = (integer(&a, 1)?, integer(&a, 2)?);
        if offset < 0 {
            offset += clusters.len() as i64;
        } else if length == 0 {
            return Ok(Value::from(""));
        }
        let start = (offset.max(0) as usize).min(clusters.len());
        let end = if length < 0 { clusters.len() } else { start.saturating_add(length as usize).min(clusters.len()) };
        Ok(Value::from(clusters[start..end].concat()))
    })
}

pub(super) fn reverse() -> FuncDef {
    fixed(1, |a| Ok(Value::from(string(&a, 0)?.graphemes(true).rev().collect::<String>())))
}

pub(super) fn trimspace() -> FuncDef {
    fixed(1, |a| Ok(Value::from(string(&a, 0)?.trim())))
}

pub(super) fn trim() -> FuncDef {
    fixed(2, |a| {
        let cutset: Vec<char> = string(&a, 1)?.chars().collect();
        Ok(Value::from(string(&a, 0)?.trim_matches(|c| cutset.contains(&c))))
    })
}

pub(super) fn trimprefix() -> FuncDef {
    fixed(2, |a| {
        let (text, prefix) = (string(&a, 0)?, string(&a, 1)?);
        Ok(Value::from(text.strip_prefix(prefix.as_str()).unwrap_or(&text)))
    })
}

pub(super) fn trimsuffix() -> FuncDef {
    fixed(2, |a| {
        let (text, suffix) = (string(&a, 0)?, string(&a, 1)?);
        Ok(Value::from(text.strip_suffix(suffix.as_str()).unwrap_or(&text)))
    })
}

/// Removes every trailing newline (`\n`, `\r\n` or `\r`).
pub(super) fn chomp() -> FuncDef {
    fixed(1, |a| Ok(Value::from(string(&a, 0)?.trim_end_matches(['\n', '\r']))))
}

pub(super) fn indent() -> FuncDef {
    fixed(2, |a| {
        let pad = " ".repeat(integer(&a, 0)?.max(0) as usize);
        Ok(Value::from(string(&a, 1)?.replace('\n', &format!("\n{pad}"))))
    })
}

pub(super) fn replace() -> FuncDef {
    fixed(3, |a| {
        let (text, from, to) = (string(&a, 0)?, string(&a, 1)?, string(&a, 2)?);
        // Go's strings.Replace with an empty `from` inserts between runes.
        if from.is_empty() {
            let mut out = to.clone();
            for c in text.chars() {
                out.push(c);
                out.push_str(&to);
            }
            return Ok(Value::from(out));
        }
        Ok(Value::from(text.replace(&from, &to)))
    })
}

/// `split(separator, string)`; an empty separator splits into characters.
pub(super) fn split() -> FuncDef {
    fixed(2, |a| {
        let (separator, text) = (string(&a, 0)?, string(&a, 1)?);
        let parts: Vec<Value> = if separator.is_empty() {
            text.chars().map(|c| Value::from(c.to_string())).collect()
        } else {
            text.split(separator.as_str()).map(Value::from).collect()
        };
        Ok(Value::Array(parts))
    })
}

/// `join(separator, list...)`: at least one list; null elements are errors.
pub(super) fn join() -> FuncDef {
    variadic(1, |a| {
        if a.len() < 2 {
            return Err("at least one list is required".into());
        }
        let separator = string(&a, 0)?;
        let mut items = Vec::new();
        for i in 1..a.len() {
            for (n, item) in list(&a, i)?.iter().enumerate() {
                if item.is_null() {
                    return Err(format!("element {n} of list {i} is null; cannot concatenate null values"));
                }
                items.push(to_string(item).map_err(|e| format!("element {n} of list {i}: {e}"))?);
            }
        }
        Ok(Value::from(items.join(&separator)))
    })
}

/// Go's `path.Base`.
pub(super) fn basename() -> FuncDef {
    fixed(1, |a| {
        let path = string(&a, 0)?;
        if path.is_empty() {
            return Ok(Value::from("."));
        }
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Value::from("/"));
        }
        Ok(Value::from(trimmed.rsplit('/').next().unwrap_or(trimmed)))
    })
}

/// Go's `path.Dir`: everything before the last slash, cleaned.
pub(super) fn dirname() -> FuncDef {
    fixed(1, |a| {
        let path = string(&a, 0)?;
        let dir = match path.rfind('/') {
            Some(i) => &path[..=i],
            None => "",
        };
        Ok(Value::from(clean(dir)))
    })
}

/// Go's `path.Clean`.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// buildx: anything but ASCII letters, digits, `_` and `-` becomes `_`.
pub(super) fn sanitize() -> FuncDef {
    fixed(1, |a| {
        let text = string(&a, 0)?;
        Ok(Value::from(
            text.chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                .collect::<String>(),
        ))
    })
}

pub(super) fn homedir() -> FuncDef {
    fixed(0, |_| {
        std::env::var("HOME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()
                    .map(|u| u.dir.to_string_lossy().into_owned())
            })
            .map(Value::from)
            .ok_or_else(|| "cannot find the home directory".to_string())
    })
}

fn compile(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|e| format!("invalid regexp pattern {pattern:?}: {e}"))
}

/// What a match gives: the whole match without groups, a list of the
/// groups' texts with unnamed groups, an object with named ones (go-cty's
/// rules; mixing both is an error). A group that took no part is null.
fn match_value(re: &regex::Regex, captures: &regex::Captures) -> Value {
    let named: Vec<&str> = re.capture_names().flatten().collect();
    if re.captures_len() == 1 {
        return Value::from(&captures[0]);
    }
    let text = |m: Option<regex::Match>| m.map_or(Value::Null, |m| Value::from(m.as_str()));
    if named.is_empty() {
        Value::Array((1..re.captures_len()).map(|i| text(captures.get(i))).collect())
    } else {
        super::sorted_object(named.iter().map(|name| (name.to_string(), text(captures.name(name)))))
    }
}

fn check_groups(re: &regex::Regex) -> Result<()> {
    let named = re.capture_names().flatten().count();
    if named > 0 && named + 1 != re.captures_len() {
        return Err("invalid regexp pattern: cannot mix both named and unnamed capture groups".into());
    }
    Ok(())
}

/// `regex(pattern, string)`: the first match; no match is an error.
pub(super) fn regex() -> FuncDef {
    fixed(2, |a| {
        let re = compile(&string(&a, 0)?)?;
        check_groups(&re)?;
        let text = string(&a, 1)?;
        let captures = re.captures(&text).ok_or("pattern did not match any part of the given string")?;
        Ok(match_value(&re, &captures))
    })
}

/// `regexall(pattern, string)`: every match, possibly none.
pub(super) fn regexall() -> FuncDef {
    fixed(2, |a| {
        let re = compile(&string(&a, 0)?)?;
        check_groups(&re)?;
        let text = string(&a, 1)?;
        Ok(Value::Array(re.captures_iter(&text).map(|c| match_value(&re, &c)).collect()))
    })
}

/// `regex_replace(string, pattern, replacement)`; `$1` and `${name}` in the
/// replacement read as in Go's `Regexp.Expand`.
pub(super) fn regex_replace() -> FuncDef {
    fixed(3, |a| {
        let re = compile(&string(&a, 1)?)?;
        Ok(Value::from(re.replace_all(&string(&a, 0)?, string(&a, 2)?.as_str()).into_owned()))
    })
}

/// `format(spec, values...)`: Go's verbs as go-cty reads them.
pub(super) fn format() -> FuncDef {
    variadic(1, |a| Ok(Value::from(format_values(&string(&a, 0)?, &a[1..])?)))
}

/// `formatlist(spec, values...)`: one string per element of the list
/// arguments (all of one length); other arguments repeat.
pub(super) fn formatlist() -> FuncDef {
    variadic(1, |a| {
        let spec = string(&a, 0)?;
        let mut length: Option<(usize, usize)> = None;
        for (i, arg) in a.iter().enumerate().skip(1) {
            if let Value::Array(items) = arg {
                match length {
                    None => length = Some((items.len(), i)),
                    Some((n, first)) if n != items.len() => {
                        return Err(format!(
                            "argument {} has length {}, which is inconsistent with argument {} of length {n}",
                            i + 1,
                            items.len(),
                            first + 1
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        let count = length.map_or(1, |(n, _)| n);
        let mut out = Vec::with_capacity(count);
        for n in 0..count {
            let values: Vec<Value> = a[1..]
                .iter()
                .map(|v| match v {
                    Value::Array(items) => items[n].clone(),
                    other => other.clone(),
                })
                .collect();
            let text = format_values(&spec, &values).map_err(|e| format!("error on format iteration {n}: {e}"))?;
            out.push(Value::from(text));
        }
        Ok(Value::Array(out))
    })
}

/// One `%` verb: flags, width, precision, an explicit `[n]` argument.
#[derive(Default)]
struct Verb {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

fn format_values(spec: &str, args: &[Value]) -> Result<String> {
    let chars: Vec<char> = spec.chars().collect();
    let mut out = String::new();
    let mut next = 0usize;
    let mut highest = 0usize;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        if chars.get(i) == Some(&'%') {
            out.push('%');
            i += 1;
            continue;
        }
        let mut verb = Verb::default();
        while let Some(&c) = chars.get(i) {
            match c {
                '-' => verb.minus = true,
                '+' => verb.plus = true,
                '#' => verb.sharp = true,
                '0' => verb.zero = true,
                ' ' => verb.space = true,
                _ => break,
            }
            i += 1;
        }
        if chars.get(i) == Some(&'[') {
            let close = chars[i..].iter().position(|&c| c == ']').map(|p| i + p);
            let index: Option<usize> =
                close.and_then(|close| chars[i + 1..close].iter().collect::<String>().parse().ok());
            match (close, index) {
                (Some(close), Some(index)) if index > 0 => {
                    next = index - 1;
                    i = close + 1;
                }
                _ => return Err(format!("invalid format string starting at offset {start}")),
            }
        }
        let digits = |i: &mut usize| {
            let from = *i;
            while chars.get(*i).is_some_and(char::is_ascii_digit) {
                *i += 1;
            }
            (from < *i).then(|| chars[from..*i].iter().collect::<String>().parse::<usize>().unwrap_or(0))
        };
        verb.width = digits(&mut i);
        if chars.get(i) == Some(&'.') {
            i += 1;
            verb.precision = Some(digits(&mut i).unwrap_or(0));
        }
        let Some(&mode) = chars.get(i) else {
            return Err(format!("invalid format string starting at offset {start}"));
        };
        i += 1;
        let raw: String = chars[start..i].iter().collect();
        let arg = args.get(next).ok_or_else(|| {
            format!(
                "not enough arguments for {raw:?} at {start}: need index {} but have {} total",
                next + 1,
                args.len()
            )
        })?;
        next += 1;
        highest = highest.max(next);
        if mode != 'v' && arg.is_null() {
            return Err(format!("unsupported value for {raw:?} at {start}: null value cannot be formatted"));
        }
        let unsupported = |e: String| format!("unsupported value for {raw:?} at {start}: {e}");
        let text = match mode {
            'v' => format_as_is(&verb, arg).map_err(unsupported)?,
            't' => super::to_bool(arg).map_err(unsupported)?.to_string(),
            'b' | 'd' | 'o' | 'x' | 'X' => format_integer(&verb, mode, arg).map_err(unsupported)?,
            'e' | 'E' | 'f' | 'g' | 'G' => format_float(&verb, mode, arg).map_err(unsupported)?,
            's' | 'q' => {
                let mut text = to_string(arg).map_err(unsupported)?;
                if let Some(precision) = verb.precision.filter(|p| *p > 0) {
                    text = text.graphemes(true).take(precision).collect();
                }
                if mode == 'q' {
                    text = super::encoding::json_text(&Value::String(text))?;
                }
                text
            }
            other => return Err(format!("unsupported format verb {other:?} in {raw:?} at offset {start}")),
        };
        // go-cty writes `%t` without padding.
        if mode == 't' {
            out.push_str(&text);
        } else {
            out.push_str(&pad(&verb, text, matches!(mode, 'v' | 's' | 'q')));
        }
    }
    if highest < args.len() {
        return Err(if highest == 0 {
            "too many arguments; no verbs in format string".into()
        } else {
            format!("too many arguments; only {highest} used by format string")
        });
    }
    Ok(out)
}

/// `%v`: strings and numbers as they are, anything else (and `%#v`) as JSON.
fn format_as_is(verb: &Verb, arg: &Value) -> Result<String> {
    match arg {
        Value::String(s) if !verb.sharp => Ok(s.clone()),
        Value::Number(n) if !verb.sharp => {
            let f = n.as_f64().unwrap_or_default();
            Ok(format!("{}{}", if f < 0.0 { "-" } else { "" }, go_g(f, None, n)))
        }
        other => super::encoding::json_text(other),
    }
}

/// Width padding, counted in grapheme clusters; numbers pad with zeros
/// after their sign when asked.
fn pad(verb: &Verb, text: String, textual: bool) -> String {
    let Some(width) = verb.width else { return text };
    let len = text.graphemes(true).count();
    if len >= width {
        return text;
    }
    let fill = width - len;
    if verb.minus {
        return format!("{text}{}", " ".repeat(fill));
    }
    if verb.zero && !textual {
        let (sign, digits) = match text.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), text[1..].to_string()),
            _ => (String::new(), text),
        };
        return format!("{sign}{}{digits}", "0".repeat(fill));
    }
    if verb.zero {
        return format!("{}{text}", "0".repeat(fill));
    }
    format!("{}{text}", " ".repeat(fill))
}

fn sign(verb: &Verb, negative: bool) -> &'static str {
    match (negative, verb.plus, verb.space) {
        (true, _, _) => "-",
        (false, true, _) => "+",
        (false, false, true) => " ",
        _ => "",
    }
}

fn format_integer(verb: &Verb, mode: char, arg: &Value) -> Result<String> {
    let n = super::to_number(arg)?;
    let value: i128 = match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) if !n.is_f64() => i as i128,
        (_, Some(u), _) if !n.is_f64() => u as i128,
        (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1.7e38 => f as i128,
        _ => return Err("an integer is required".into()),
    };
    let magnitude = value.unsigned_abs();
    let digits = match mode {
        'b' => format!("{magnitude:b}"),
        'o' => format!("{}{magnitude:o}", if verb.sharp { "0" } else { "" }),
        'x' => format!("{}{magnitude:x}", if verb.sharp { "0x" } else { "" }),
        'X' => format!("{}{magnitude:X}", if verb.sharp { "0X" } else { "" }),
        _ => magnitude.to_string(),
    };
    let digits = match verb.precision {
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        _ => digits,
    };
    Ok(format!("{}{digits}", sign(verb, value < 0)))
}

fn format_float(verb: &Verb, mode: char, arg: &Value) -> Result<String> {
    let n = super::to_number(arg)?;
    let f = n.as_f64().unwrap_or_default();
    let body = match mode {
        'f' => format!("{:.*}", verb.precision.unwrap_or(6), f.abs()),
        'e' | 'E' => go_e(f.abs(), verb.precision.unwrap_or(6), mode == 'E'),
        _ => {
            let g = go_g(f.abs(), verb.precision, &n);
            if mode == 'G' {
                g.to_uppercase()
            } else {
                g
            }
        }
    };
    Ok(format!("{}{body}", sign(verb, f < 0.0)))
}

/// Go's `%e`: mantissa with `precision` decimals, exponent of at least two digits.
fn go_e(f: f64, precision: usize, upper: bool) -> String {
    let text = format!("{f:.precision$e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs())
}

/// Go's `%g` of a `big.Float`: the shortest digits (or `precision`
/// significant ones), in exponent form when the exponent is below -4 or
/// at least the precision (6 for the shortest form).
fn go_g(f: f64, precision: Option<usize>, n: &hcl::Number) -> String {
    let (digits, exponent) = match (precision, n.is_f64()) {
        // Integers keep all their digits (an f64 would round those past 2^53).
        (None, false) => {
            let text = number_text(n).trim_start_matches('-').to_string();
            let exponent = text.len() as i32 - 1;
            (text.trim_end_matches('0').to_string(), exponent)
        }
        _ => {
            let sci = match precision {
                Some(p) => format!("{:.*e}", p.max(1) - 1, f.abs()),
                None => format!("{:e}", f.abs()),
            };
            let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
            let digits = mantissa.replace('.', "");
            let digits = digits.trim_end_matches('0');
            (if digits.is_empty() { "0".to_string() } else { digits.to_string() }, exponent.parse().unwrap_or(0))
        }
    };
    let limit = precision.map_or(6, |p| p.max(1) as i32);
    if exponent < -4 || exponent >= limit {
        let rest = &digits[1..];
        let point = if rest.is_empty() { "" } else { "." };
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{}{point}{rest}e{sign}{:02}", &digits[..1], exponent.abs());
    }
    if exponent < 0 {
        return format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize));
    }
    let int_len = exponent as usize + 1;
    if digits.len() <= int_len {
        format!("{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        format!("{}.{}", &digits[..int_len], &digits[int_len..])
    }
}
