//! buildx's `semvercmp(version, constraint)`, on Masterminds/semver v3.4's
//! rules (not Cargo's): `v` prefixes and missing minor/patch are allowed,
//! constraints are `=`, `!=`, `>`, `<`, `>=`, `<=`, `~`, `~>`, `^`, with
//! `x`/`*` wildcards, hyphen ranges (`1.2 - 1.4`), `,` or space for "and",
//! `||` for "or"; a prerelease version only satisfies a group of
//! constraints that mentions a prerelease.

use std::cmp::Ordering;
use std::sync::LazyLock;

use hcl::eval::FuncDef;
use hcl::Value;
use regex::Regex;

use super::{fixed, string, Result};

pub(super) fn semvercmp() -> FuncDef {
    fixed(2, |a| {
        let version = Version::parse(&string(&a, 0)?)?;
        let constraints = Constraints::parse(&string(&a, 1)?)?;
        Ok(Value::Bool(constraints.check(&version)))
    })
}

#[derive(Debug, Clone, PartialEq)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
}

const LOOSE: &str =
    r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const CONSTRAINT_VERSION: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

static VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!("^{LOOSE}$")).expect("valid regex"));
static ONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"^\s*({OPS})\s*({CONSTRAINT_VERSION})\s*$")).expect("valid regex"));
static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"\s*({CONSTRAINT_VERSION})\s+-\s+({CONSTRAINT_VERSION})\s*")).expect("valid regex")
});
static FIND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"({OPS})\s*({CONSTRAINT_VERSION})")).expect("valid regex"));
static VALID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(\s*({OPS})\s*({CONSTRAINT_VERSION})\s*)((?:\s+|,\s*)({OPS})\s*({CONSTRAINT_VERSION})\s*)*$"
    ))
    .expect("valid regex")
});

fn valid_part(part: &str, allow_leading_zero: bool) -> bool {
    !part.is_empty()
        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && (allow_leading_zero
            || !(part.len() > 1 && part.starts_with('0') && part.chars().all(|c| c.is_ascii_digit())))
}

impl Version {
    /// Masterminds' `NewVersion` in its default (coercing) mode.
    fn parse(text: &str) -> Result<Version> {
        let invalid = || format!("{text:?} is not a semantic version");
        let m = VERSION.captures(text).ok_or_else(invalid)?;
        let number = |i: usize| -> Result<u64> {
            match m.get(i) {
                Some(g) => g.as_str().trim_start_matches('.').parse().map_err(|_| invalid()),
                None => Ok(0),
            }
        };
        let pre = m.get(5).map_or("", |g| g.as_str()).to_string();
        if !pre.is_empty() && !pre.split('.').all(|p| valid_part(p, false)) {
            return Err(format!("{text:?}: invalid prerelease"));
        }
        if let Some(meta) = m.get(8) {
            if !meta.as_str().split('.').all(|p| valid_part(p, true)) {
                return Err(format!("{text:?}: invalid metadata"));
            }
        }
        Ok(Version { major: number(1)?, minor: number(2)?, patch: number(3)?, pre })
    }

    fn compare(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch)).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &other.pre),
            }
        })
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).copied().unwrap_or(""), b.get(i).copied().unwrap_or(""));
        let order = match (x, y) {
            _ if x == y => Ordering::Equal,
            ("", _) => Ordering::Less,
            (_, "") => Ordering::Greater,
            _ => match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Err(_), Err(_)) => x.cmp(y),
                // A numeric part is lower than an alphanumeric one.
                (Ok(_), Err(_)) => Ordering::Less,
                (Err(_), Ok(_)) => Ordering::Greater,
            },
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

struct Constraint {
    op: String,
    version: Version,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

struct Constraints {
    /// Groups joined by "or", each a list joined by "and", and whether the
    /// group names a prerelease.
    groups: Vec<(Vec<Constraint>, bool)>,
}

fn is_x(part: &str) -> bool {
    matches!(part, "x" | "X" | "*")
}

impl Constraints {
    fn parse(text: &str) -> Result<Constraints> {
        // Hyphen ranges become `>= a, <= b`.
        let mut rewritten = text.to_string();
        for m in RANGE.captures_iter(text) {
            let (from, to) = (&m[1], &m[11]);
            rewritten = rewritten.replacen(&m[0], &format!(">= {from}, <= {to} "), 1);
        }
        let mut groups = Vec::new();
        for group in rewritten.split("||") {
            if !VALID.is_match(group) {
                return Err(format!("improper constraint: {group}"));
            }
            let mut found: Vec<&str> = FIND.find_iter(group).map(|m| m.as_str()).collect();
            if found.is_empty() {
                found.push(group);
            }
            let constraints = found.into_iter().map(parse_constraint).collect::<Result<Vec<_>>>()?;
            let has_pre = constraints.iter().any(|c| !c.version.pre.is_empty());
            groups.push((constraints, has_pre));
        }
        Ok(Constraints { groups })
    }

    fn check(&self, version: &Version) -> bool {
        self.groups.iter().any(|(constraints, has_pre)| constraints.iter().all(|c| c.check(version, *has_pre)))
    }
}

fn parse_constraint(text: &str) -> Result<Constraint> {
    let m = ONE.captures(text).ok_or_else(|| format!("improper constraint: {text}"))?;
    let group = |i: usize| m.get(i).map_or("", |g| g.as_str());
    let (major, minor, patch, pre) = (group(3), group(4), group(5), group(6));
    let minor_x = minor.is_empty() || is_x(minor.trim_start_matches('.'));
    let patch_x = patch.is_empty() || is_x(patch.trim_start_matches('.'));
    let (text_version, dirty, minor_dirty, patch_dirty) = if major.is_empty() || is_x(major) {
        (format!("0.0.0{pre}"), true, false, false)
    } else if minor_x {
        (format!("{major}.0.0{pre}"), true, true, false)
    } else if patch_x {
        (format!("{major}{minor}.0{pre}"), true, false, true)
    } else {
        (group(2).to_string(), false, false, false)
    };
    let version = Version::parse(&text_version).map_err(|_| "constraint parser error".to_string())?;
    Ok(Constraint { op: group(1).to_string(), version, dirty, minor_dirty, patch_dirty })
}

impl Constraint {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.version;
        match self.op.as_str() {
            "" | "=" => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    v.compare(c) == Ordering::Equal
                }
            }
            "!=" => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    }
                    if self.patch_dirty {
                        return (!v.pre.is_empty() || !c.pre.is_empty())
                            && compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                    }
                }
                v.compare(c) != Ordering::Equal
            }
            ">" => {
                if !self.dirty {
                    return v.compare(c) == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                v.compare(c) == Ordering::Greater
            }
            "<" => v.compare(c) == Ordering::Less,
            ">=" | "=>" => v.compare(c) != Ordering::Less,
            "<=" | "=<" => {
                if !self.dirty {
                    return v.compare(c) != Ordering::Greater;
                }
                !(v.major > c.major || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            "~" | "~>" => self.tilde(v),
            "^" => {
                if v.compare(c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
            _ => false,
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}
