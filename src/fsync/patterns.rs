//! Path patterns with the semantics of moby's `patternmatcher`, and
//! `.dockerignore` parsing.
//!
//! BuildKit's client filters the files it sends with these rules, and the
//! Dockerfile frontend turns `.dockerignore` into `exclude-patterns` with
//! them, so fbuild must agree with them byte for byte: `**` spans
//! directories, `*` and `?` stay within one path component, `[...]` is a
//! character class, a leading `!` re-includes what earlier patterns
//! excluded, patterns are lexically cleaned, and a pattern that matches a
//! directory also matches everything below it. These are not gitignore's
//! rules (no anchoring by a trailing `/`, no basename matching of
//! slash-free patterns).
//!
//! Like the Go code, a pattern is turned into one of four matchers: exact
//! string, prefix (`dir/**`), suffix (`**/name`) or a regular expression.
//! Syntax errors that Go's `filepath.Match` would report are returned when
//! the matcher is built; regular-expression errors (which Go only notices
//! on first use) are returned when matching reaches the bad pattern.

use regex::Regex;

use crate::gopath;

/// Errors from building or using a [`PatternMatcher`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// A pattern consisting of a lone `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// A pattern that Go's `filepath.Match` (or its regular expression) rejects.
    #[error("syntax error in pattern {0:?}")]
    BadPattern(String),
}

/// An ordered list of patterns; later patterns override earlier ones.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
}

/// One cleaned pattern of a [`PatternMatcher`].
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    matcher: Result<Matcher, PatternError>,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact,
    /// The pattern ended in `**` after a literal prefix; holds the prefix.
    Prefix(String),
    /// The pattern started with `**` followed by literal text; holds that text.
    Suffix(String),
    Regex(Regex),
}

/// Per-pattern results for a directory, handed to its children so they need
/// not re-match every ancestor (see [`PatternMatcher::matches_using_parent_results`]).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

impl PatternMatcher {
    /// Builds a matcher. Blank patterns are dropped, the others trimmed and
    /// cleaned; `!` marks an exception.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut out = Vec::with_capacity(patterns.len());
        for raw in patterns {
            let trimmed = raw.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let mut cleaned = gopath::clean(trimmed);
            let exclusion = cleaned.starts_with('!');
            if exclusion {
                if cleaned.len() == 1 {
                    return Err(PatternError::IllegalExclusion);
                }
                cleaned.remove(0);
            }
            // Go validates the syntax by matching the pattern against ".".
            go_match(&cleaned, ".")?;
            let matcher = compile(&cleaned);
            out.push(Pattern { cleaned, exclusion, matcher });
        }
        Ok(Self { patterns: out })
    }

    /// The patterns in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether `file` (a clean, slash-separated relative path) or one of its
    /// parent directories matches, after exceptions are applied in order
    /// (also the linter's `CopyIgnoredFile` check).
    pub fn matches_or_parent_matches(&self, file: &str) -> Result<bool, PatternError> {
        let parents = parent_prefixes(file);
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion cannot change an already-matched result, nor an
            // exception an unmatched one.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(file)?;
            if !hit {
                for parent in &parents {
                    if pattern.matches(parent).unwrap_or(false) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Like [`Self::matches_or_parent_matches`], but reuses the results of
    /// the parent directory (`parent` is the [`MatchInfo`] returned for it,
    /// or the default value for top-level entries), as fsutil's walker does.
    pub fn matches_using_parent_results(
        &self,
        file: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), PatternError> {
        let parent_matched = &parent.parent_matched;
        if !parent_matched.is_empty() && parent_matched.len() != self.patterns.len() {
            return Err(PatternError::BadPattern("parent match results for a different pattern list".to_owned()));
        }
        let mut matched = false;
        let mut info = MatchInfo { parent_matched: vec![false; self.patterns.len()] };
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent_matched.get(i).copied().unwrap_or(false);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(file)?;
                // Without parent results, check the ancestors directly.
                if !hit && parent_matched.is_empty() {
                    for prefix in parent_prefixes(file) {
                        if pattern.matches(&prefix).unwrap_or(false) {
                            hit = true;
                            break;
                        }
                    }
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }
}

impl Pattern {
    /// The cleaned pattern, without its `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this pattern is an exception (`!`).
    pub fn exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &str) -> Result<bool, PatternError> {
        match &self.matcher {
            Err(err) => Err(err.clone()),
            Ok(Matcher::Exact) => Ok(path == self.cleaned),
            Ok(Matcher::Prefix(prefix)) => Ok(path.starts_with(prefix.as_str())),
            Ok(Matcher::Suffix(suffix)) => {
                // `**/foo` also matches `foo` itself.
                Ok(path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|rest| path == rest))
            }
            Ok(Matcher::Regex(re)) => Ok(re.is_match(path)),
        }
    }
}

/// Every proper ancestor of `file`, shortest first: `a/b/c` gives `a`, `a/b`.
fn parent_prefixes(file: &str) -> Vec<String> {
    let Some((parent, _)) = file.rsplit_once('/') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut end = 0;
    for component in parent.split('/') {
        end += component.len();
        out.push(parent[..end].to_owned());
        end += 1;
    }
    out
}

/// Turns a cleaned pattern into a matcher, the way patternmatcher does:
/// literal text stays an exact/prefix/suffix comparison, anything with
/// wildcards, classes or escapes becomes an anchored regular expression.
fn compile(pattern: &str) -> Result<Matcher, PatternError> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut kind = Kind::Exact;
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut iteration = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                // `**/` is the same as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if iteration == 0 {
                    kind = Kind::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            kind = Kind::Regex;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            if let Some(&next) = chars.get(i) {
                i += 1;
                re.push('\\');
                re.push(next);
                kind = Kind::Regex;
            } else {
                re.push('\\');
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            kind = Kind::Regex;
        } else {
            re.push(ch);
        }
        iteration += 1;
    }
    let bad = || PatternError::BadPattern(pattern.to_owned());
    Ok(match kind {
        Kind::Exact => Matcher::Exact,
        Kind::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_owned()),
        Kind::Suffix => Matcher::Suffix(pattern[2..].to_owned()),
        Kind::Regex => {
            re.push('$');
            Matcher::Regex(Regex::new(&go_regex_to_rust(&re)).map_err(|_| bad())?)
        }
    })
}

/// Rewrites the regular expression patternmatcher builds (Go `regexp`
/// syntax) so Rust's `regex` reads it the same way. The languages differ only
/// inside character classes, where Rust gives `[`, `&&`, `--` and `~~` a
/// meaning and Go does not, and for a stray `]`, which Go reads as a literal.
fn go_regex_to_rust(go: &str) -> String {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 8);
    let mut in_class = false;
    let mut prev_dash = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '\\' {
            out.push('\\');
            if let Some(&next) = chars.get(i) {
                out.push(next);
                i += 1;
            }
            prev_dash = false;
            continue;
        }
        if !in_class {
            match ch {
                '[' => {
                    in_class = true;
                    out.push('[');
                    if chars.get(i) == Some(&'^') {
                        out.push('^');
                        i += 1;
                    }
                    // A `]` first in a class is a literal in both languages;
                    // escape it to be explicit.
                    if chars.get(i) == Some(&']') {
                        out.push_str("\\]");
                        i += 1;
                    }
                }
                ']' => out.push_str("\\]"),
                _ => out.push(ch),
            }
            prev_dash = false;
            continue;
        }
        match ch {
            ']' => {
                in_class = false;
                out.push(']');
            }
            '[' if chars.get(i) == Some(&':') => {
                // A POSIX class such as `[:alpha:]` means the same in both.
                let rest: String = chars[i..].iter().collect();
                if let Some(end) = rest.find(":]") {
                    out.push('[');
                    out.push_str(&rest[..end + 2]);
                    i += rest[..end + 2].chars().count();
                } else {
                    out.push_str("\\[");
                }
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            '-' if prev_dash => out.push_str("\\-"),
            _ => out.push(ch),
        }
        prev_dash = ch == '-';
    }
    out
}

/// Go's `filepath.Match` on Unix: whether `name` matches the shell pattern
/// `pattern` as a whole. `*` and `?` never match `/`. Used for the syntax
/// check of patterns and for wildcards in `followpaths`.
pub(crate) fn go_match(pattern: &str, name: &str) -> Result<bool, PatternError> {
    let bad = || PatternError::BadPattern(pattern.to_owned());
    let mut pat = pattern.as_bytes();
    let mut name = name.as_bytes();
    'pattern: while !pat.is_empty() {
        let (star, chunk, rest) = scan_chunk(pat);
        pat = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest unless it holds a `/`.
            return Ok(!name.contains(&b'/'));
        }
        let (left, ok) = match_chunk(chunk, name).map_err(|()| bad())?;
        if ok && (left.is_empty() || !pat.is_empty()) {
            name = left;
            continue;
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                let (left, ok) = match_chunk(chunk, &name[i + 1..]).map_err(|()| bad())?;
                if ok {
                    // The last chunk must consume the whole name.
                    if pat.is_empty() && !left.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = left;
                    continue 'pattern;
                }
                i += 1;
            }
        }
        // No match; still report a malformed remainder, as Go does.
        while !pat.is_empty() {
            let (_, chunk, rest) = scan_chunk(pat);
            pat = rest;
            match_chunk(chunk, b"").map_err(|()| bad())?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off leading stars and the following chunk up to the next star
/// outside a character class.
fn scan_chunk(mut pat: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let [b'*', rest @ ..] = pat {
        pat = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pat.len() {
        match pat[i] {
            b'\\' if i + 1 < pat.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pat[..i], &pat[i..])
}

/// Matches one star-free chunk at the start of `s`; returns the rest of `s`
/// and whether it matched. Keeps parsing after a mismatch so syntax errors
/// anywhere in the chunk are reported (`Err(())`).
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<(&'a [u8], bool), ()> {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    let (c, n) = decode_char(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_escaped(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let (h, rest) = get_escaped(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_char(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            first => {
                let mut lit = first;
                if first == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err(());
                    }
                    lit = chunk[0];
                }
                if !failed {
                    if lit != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed {
        return Ok((b"", false));
    }
    Ok((s, true))
}

/// One possibly-escaped character of a class; the class must go on after it.
fn get_escaped(chunk: &[u8]) -> Result<(char, &[u8]), ()> {
    let mut chunk = match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(()),
        Some(_) => chunk,
    };
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return Err(());
        }
    }
    let (c, n) = decode_char(chunk);
    if c == char::REPLACEMENT_CHARACTER && n == 1 {
        return Err(());
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(());
    }
    Ok((c, rest))
}

/// Decodes the first UTF-8 character of `s` (which is non-empty); invalid
/// bytes decode as U+FFFD of length 1, like Go's `utf8.DecodeRune`.
fn decode_char(s: &[u8]) -> (char, usize) {
    let end = s.len().min(4);
    for n in 1..=end {
        if let Ok(text) = std::str::from_utf8(&s[..n]) {
            if let Some(c) = text.chars().next() {
                return (c, n);
            }
        }
    }
    (char::REPLACEMENT_CHARACTER, 1)
}

/// Reads a `.dockerignore` file into exclude patterns the way the Dockerfile
/// frontend does: a UTF-8 byte-order mark is dropped, lines starting with `#`
/// are comments (only in the first column), blank lines are skipped, the
/// rest is trimmed and cleaned, and a leading `/` is removed (also after a
/// `!`), so `/a` and `a` are the same pattern.
pub fn parse_dockerignore(content: &[u8]) -> Vec<String> {
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let text = String::from_utf8_lossy(content);
    let mut patterns = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = gopath::clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        patterns.push(cleaned);
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(pattern: &str, path: &str) -> bool {
        let pm = PatternMatcher::new(&[pattern]).expect("valid pattern");
        pm.matches_or_parent_matches(path).expect("matching succeeds")
    }

    /// Runs all three ways of matching (direct with parents, reusing parent
    /// results while descending, and with empty parent results) and checks
    /// they agree with `want`.
    fn check_all(patterns: &[&str], path: &str, want: bool) {
        let pm = PatternMatcher::new(patterns).expect("valid patterns");
        let direct = pm.matches_or_parent_matches(path).expect("matching succeeds");
        assert_eq!(direct, want, "matches_or_parent_matches({patterns:?}, {path:?})");

        let mut info = MatchInfo::default();
        for parent in parent_prefixes(path) {
            info = pm.matches_using_parent_results(&parent, &info).expect("matching succeeds").1;
        }
        let (descended, _) = pm.matches_using_parent_results(path, &info).expect("matching succeeds");
        assert_eq!(descended, want, "descending match ({patterns:?}, {path:?})");

        let (cold, _) = pm.matches_using_parent_results(path, &MatchInfo::default()).expect("matching succeeds");
        assert_eq!(cold, want, "match without parent info ({patterns:?}, {path:?})");
    }

    #[test]
    fn single_patterns_follow_patternmatcher() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
            ("a\\*b", "a*b", true),
            // A directory pattern covers everything below it.
            ("docs", "docs/README.md", true),
            ("docs/", "docs/a/b", true),
            ("*.go", "pkg/file.go", false),
        ];
        for &(pattern, path, want) in cases {
            check_all(&[pattern], path, want);
        }
    }

    #[test]
    fn exceptions_apply_in_order() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["**", "!util/docker/web"], "util/docker/web/foo", false),
            (&["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", true),
            (&["**", "!dist/*.whl"], "dist/a-1.0+x-py3-none-any.whl", false),
            (&["!fileutils.go", "*.go"], "fileutils.go", true),
            (&["*.go", "!fileutils.go"], "fileutils.go", false),
            (&["docs", "!docs/README.md"], "docs/README.md", false),
            (&["docs/", "!docs/README.md"], "docs/README.md", false),
            (&["docs/*", "!docs/README.md"], "docs/README.md", false),
            (&["docs", "!docs/README.md"], "docs/other.md", true),
            (&[], "any/path", false),
        ];
        for &(patterns, path, want) in cases {
            check_all(patterns, path, want);
        }
    }

    #[test]
    fn shell_match_follows_go_filepath_match() {
        let ok: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
        ];
        for &(pattern, name, want) in ok {
            assert_eq!(go_match(pattern, name), Ok(want), "go_match({pattern:?}, {name:?})");
        }
        for bad in ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "ab[", "a[b"] {
            assert!(go_match(bad, "a").is_err(), "{bad:?} must be a syntax error");
            assert!(PatternMatcher::new(&[bad]).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn same_patterns_through_the_matcher() {
        // patternmatcher's own version of the filepath.Match table: matching
        // whole paths (here all single components) gives the same answers.
        for (pattern, path, want) in [
            ("*", "fileutils.go", true),
            ("*.go", "fileutils.go", true),
            ("ab[^e-g]", "abc", true),
            ("[\\-x]", "-", true),
            ("a[^a]b", "a☺b", true),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
        ] {
            check_all(&[pattern], path, want);
        }
    }

    #[test]
    fn matcher_kinds_follow_patternmatcher() {
        fn kind(p: &str) -> String {
            match compile(&gopath::clean(p)).expect("compiles") {
                Matcher::Exact => "exact".into(),
                Matcher::Prefix(s) => format!("prefix {s}"),
                Matcher::Suffix(s) => format!("suffix {s}"),
                Matcher::Regex(re) => format!("regex {}", re.as_str()),
            }
        }
        assert_eq!(kind("*"), "regex ^[^/]*$");
        assert_eq!(kind("a*/b"), "regex ^a[^/]*/b$");
        assert_eq!(kind("**"), "suffix ");
        assert_eq!(kind("**/**"), "regex ^(.*/)?.*$");
        assert_eq!(kind("dir/**"), "prefix dir/");
        assert_eq!(kind("**/dir"), "suffix /dir");
        assert_eq!(kind("**/dir2/*"), "regex ^(.*/)?dir2/[^/]*$");
        assert_eq!(kind("**/dir2/**"), "regex ^(.*/)?dir2/.*$");
        assert_eq!(kind("**file"), "suffix file");
        assert_eq!(kind("**/**/*.txt"), "regex ^(.*/)?(.*/)?[^/]*\\.txt$");
        assert_eq!(kind("a[b-d]e"), "regex ^a[b-d]e$");
        assert_eq!(kind(".*"), "regex ^\\.[^/]*$");
        assert_eq!(kind("abc.def"), "exact");
        assert_eq!(kind("abc?def"), "regex ^abc[^/]def$");
        assert_eq!(kind("a(b)c/def"), "exact");
        assert_eq!(kind("a.|)$(}+{bc"), "exact");
    }

    #[test]
    fn patterns_are_trimmed_cleaned_and_blank_ones_dropped() {
        let pm = PatternMatcher::new(&["docs", "config", "", "  "]).expect("valid");
        assert_eq!(pm.patterns().len(), 2);

        let pm = PatternMatcher::new(&["docs", "  !docs/README.md  "]).expect("valid");
        assert_eq!(pm.patterns()[1].as_str(), "docs/README.md");
        assert!(pm.patterns()[1].exclusion());

        let pm = PatternMatcher::new(&["./a//b/../c/"]).expect("valid");
        assert_eq!(pm.patterns()[0].as_str(), "a/c");
        assert!(pm.matches_or_parent_matches("a/c/d").expect("matches"));

        assert_eq!(PatternMatcher::new(&["!"]).unwrap_err(), PatternError::IllegalExclusion);
    }

    #[test]
    fn regex_errors_surface_when_matching() {
        // Passes Go's shell-syntax check, but `l-O` is a reversed range.
        let pm = PatternMatcher::new(&["[Local-Only]/"]).expect("syntax check passes");
        for _ in 0..2 {
            assert!(matches!(pm.matches_or_parent_matches("x"), Err(PatternError::BadPattern(_))));
        }
    }

    #[test]
    fn class_contents_mean_what_go_means() {
        // Go reads `[` inside a class as a literal; Rust would nest a class.
        assert!(single("a[[]b", "a[b"));
        assert!(!single("a[[]b", "axb"));
        // `&&` and `~~` are set operations in Rust classes, literals in Go.
        assert!(single("[&&x]", "&"));
        assert!(single("[~~x]", "~"));
        assert!(!single("[&&x]", "y"));
        // POSIX classes keep working.
        assert!(single("[[:digit:]]x", "7x"));
    }

    #[test]
    fn lexical_clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("a/", "a"),
            ("a//b", "a/b"),
            ("./a/./b/", "a/b"),
            ("a/../b", "b"),
            ("a/../..", ".."),
            ("../../a", "../../a"),
            ("/..", "/"),
            ("/a/../../b", "/b"),
            ("/", "/"),
            ("!a/../b", "b"),
            ("!x/..", "."),
        ] {
            assert_eq!(gopath::clean(input), want, "clean({input:?})");
        }
        assert_eq!(gopath::join(&[".", "/a/b"]), "a/b");
        assert_eq!(gopath::join(&["/", "a/../../x"]), "/x");
        assert_eq!(gopath::join(&["", ""]), "");
    }

    #[test]
    fn dockerignore_parsing() {
        let text = b"\xEF\xBB\xBF# comment\n\n  node_modules  \r\n/abs/path\n!/keep/../keep.txt\n  # not a comment\n!\n/\n*.log\n! spaced\nlast";
        assert_eq!(
            parse_dockerignore(text),
            vec!["node_modules", "abs/path", "!keep.txt", "# not a comment", "!", "/", "*.log", "!spaced", "last",]
        );
        // A lone `!` is kept and then refused by the matcher, as in Go.
        assert!(PatternMatcher::new(&parse_dockerignore(b"!\n")).is_err());
        assert!(parse_dockerignore(b"").is_empty());
        assert!(parse_dockerignore(b"# only\n\n   \n").is_empty());
    }
}
