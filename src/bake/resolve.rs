//! From the merged files and the command line to the targets to build:
//! names are expanded through groups (recursively), `inherits` is applied
//! (parents first, so a child's own values win), then `--set` and
//! `--push` (`*.push=true`); targets named as another's context
//! (`target:NAME`) join the set and are ordered before it. Cycles, in
//! `inherits` or between contexts, are refused here, before any build.

use std::collections::{BTreeMap, BTreeSet};

use super::{BakeError, Definition, Target};

/// The targets to build, each after the targets it uses as a context.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// `--print`'s groups: `default` lists what was asked for.
    pub(crate) groups: Vec<(String, Vec<String>)>,
    /// Targets in build order (a context target before its users).
    pub(crate) targets: Vec<(String, Target)>,
}

impl Resolved {
    #[cfg(test)]
    pub(crate) fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// buildx's `--print` document, as text: serialised straight from the
    /// targets so fields keep buildx's order (a `serde_json::Value` would
    /// sort them).
    pub(crate) fn print_json(&self) -> Result<String, serde_json::Error> {
        #[derive(serde::Serialize)]
        struct Group<'a> {
            targets: &'a [String],
        }
        #[derive(serde::Serialize)]
        struct Print<'a> {
            group: BTreeMap<&'a str, Group<'a>>,
            target: BTreeMap<&'a str, &'a Target>,
        }
        let print = Print {
            group: self.groups.iter().map(|(n, m)| (n.as_str(), Group { targets: m })).collect(),
            target: self.targets.iter().map(|(n, t)| (n.as_str(), t)).collect(),
        };
        serde_json::to_string_pretty(&print)
    }
}

/// The targets whose context `target:NAME` names another target.
pub(crate) fn links(target: &Target) -> Vec<(String, String)> {
    target
        .contexts
        .iter()
        .flatten()
        .filter_map(|(name, value)| value.strip_prefix("target:").map(|t| (name.clone(), t.to_string())))
        .collect()
}

pub(crate) fn resolve(
    definition: &Definition,
    names: &[String],
    overrides: &[String],
    push: bool,
) -> Result<Resolved, BakeError> {
    let asked: Vec<String> = if names.is_empty() { vec!["default".to_string()] } else { names.to_vec() };
    let mut groups = Vec::new();
    let mut wanted = Vec::new();
    for name in &asked {
        expand(definition, name, &mut wanted, &mut groups, &mut Vec::new())?;
    }
    if wanted.is_empty() {
        return Err(BakeError::NothingToBuild(asked.join(", ")));
    }
    // buildx prints the asked-for names as the default group; asking for
    // the default group prints its members.
    let default_members = match (names.is_empty(), definition.group("default")) {
        (true, Some(members)) => members.to_vec(),
        // buildx sorts the names given on the command line.
        _ => {
            let mut sorted = asked.clone();
            sorted.sort();
            sorted.dedup();
            sorted
        }
    };
    groups.retain(|(n, _)| n != "default");
    groups.insert(0, ("default".to_string(), default_members));

    let overrides = parse_overrides(overrides)?;
    let mut resolved: Vec<(String, Target)> = Vec::new();
    let mut queue: Vec<String> = wanted.clone();
    while let Some(name) = queue.pop() {
        if resolved.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let mut target = inherited(definition, &name, &mut Vec::new())?;
        apply_overrides(&name, &mut target, &overrides)?;
        if !wanted.contains(&name) {
            // Only another target's context: its image goes nowhere but to
            // its dependents (buildx's `cacheonly` output, also what it prints).
            target.outputs = Some(vec!["type=cacheonly".to_string()]);
        } else if push {
            target.push();
        }
        target.context.get_or_insert_with(|| ".".to_string());
        target.dockerfile.get_or_insert_with(|| "Dockerfile".to_string());
        for (context, linked) in links(&target) {
            if definition.target(&linked).is_none() {
                return Err(BakeError::Target {
                    target: name.clone(),
                    reason: format!("context {context:?} names target {linked:?}, which no file defines"),
                });
            }
            queue.push(linked);
        }
        resolved.push((name, target));
    }
    let order = build_order(&resolved)?;
    let targets = order
        .into_iter()
        .map(|name| resolved.iter().find(|(n, _)| *n == name).cloned().expect("ordered from resolved"))
        .collect();
    Ok(Resolved { groups, targets })
}

/// Adds the targets `name` stands for (itself, or a group's members).
fn expand(
    definition: &Definition,
    name: &str,
    out: &mut Vec<String>,
    groups: &mut Vec<(String, Vec<String>)>,
    path: &mut Vec<String>,
) -> Result<(), BakeError> {
    if path.iter().any(|p| p == name) {
        path.push(name.to_string());
        return Err(BakeError::Cycle(format!("groups {}", path.join(" -> "))));
    }
    // A group and a target may share a name (matrix targets): the group wins.
    if let Some(members) = definition.group(name) {
        if !groups.iter().any(|(n, _)| n == name) {
            groups.push((name.to_string(), members.to_vec()));
        }
        path.push(name.to_string());
        for member in members {
            expand(definition, member, out, groups, path)?;
        }
        path.pop();
        return Ok(());
    }
    if definition.target(name).is_none() {
        let mut known: Vec<&str> = definition.targets.iter().map(|(n, _)| n.as_str()).collect();
        known.extend(definition.groups.iter().map(|(n, _)| n.as_str()));
        return Err(BakeError::UnknownTarget { name: name.to_string(), known: known_names(name, known) });
    }
    if !out.iter().any(|n| n == name) {
        out.push(name.to_string());
    }
    Ok(())
}

/// At most this many names in an "unknown target" error: a matrix can
/// define thousands, and one line listing them all helps nobody.
const KNOWN_NAMES_SHOWN: usize = 10;

/// The names an "unknown target" error lists: all of them in file order when
/// they are few, else the closest to `name` by edit distance and a count of
/// the others.
fn known_names(name: &str, mut known: Vec<&str>) -> String {
    if known.is_empty() {
        return "nothing".into();
    }
    if known.len() <= KNOWN_NAMES_SHOWN {
        return known.join(", ");
    }
    known.sort_by_cached_key(|candidate| (strsim::levenshtein(name, candidate), *candidate));
    let more = known.len() - KNOWN_NAMES_SHOWN;
    format!("{} and {more} more", known[..KNOWN_NAMES_SHOWN].join(", "))
}

/// The target with its parents' attributes beneath its own.
fn inherited(definition: &Definition, name: &str, path: &mut Vec<String>) -> Result<Target, BakeError> {
    if path.iter().any(|p| p == name) {
        path.push(name.to_string());
        return Err(BakeError::Cycle(format!("inherits {}", path.join(" -> "))));
    }
    let own = definition.target(name).ok_or_else(|| BakeError::Target {
        target: path.last().cloned().unwrap_or_default(),
        reason: format!("inherits from {name:?}, which no file defines"),
    })?;
    path.push(name.to_string());
    let mut base = Target::default();
    for parent in &own.inherits {
        let parent = inherited(definition, parent, path)?;
        base.merge(&parent);
    }
    path.pop();
    base.merge(own);
    base.inherits.clear();
    Ok(base)
}

/// One `--set PATTERN.KEY[.SUB]=VALUE`.
#[derive(Debug)]
struct Override {
    raw: String,
    pattern: String,
    key: String,
    sub: Option<String>,
    value: String,
}

fn parse_overrides(values: &[String]) -> Result<Vec<Override>, BakeError> {
    values
        .iter()
        .map(|raw| {
            let bad = |reason: &str| BakeError::Set { value: raw.clone(), reason: reason.to_string() };
            let (lhs, value) = raw.split_once('=').ok_or_else(|| bad("expected TARGET.KEY=VALUE"))?;
            let mut parts = lhs.splitn(3, '.');
            let pattern = parts.next().filter(|p| !p.is_empty()).ok_or_else(|| bad("expected TARGET.KEY=VALUE"))?;
            let key = parts.next().filter(|k| !k.is_empty()).ok_or_else(|| bad("expected TARGET.KEY=VALUE"))?;
            let sub = parts.next().map(str::to_string);
            // Check the key and value now, so a typo fails even when no target matches.
            Target::default().set(key, sub.as_deref(), value, false).map_err(|reason| bad(&reason))?;
            Ok(Override {
                raw: raw.clone(),
                pattern: pattern.to_string(),
                key: key.to_string(),
                sub,
                value: value.to_string(),
            })
        })
        .collect()
}

fn apply_overrides(name: &str, target: &mut Target, overrides: &[Override]) -> Result<(), BakeError> {
    let mut seen = BTreeSet::new();
    for o in overrides.iter().filter(|o| glob_match(&o.pattern, name)) {
        // The first --set of a list replaces the file's list; later ones add to it.
        let append = !seen.insert(o.key.clone());
        target
            .set(&o.key, o.sub.as_deref(), &o.value, append)
            .map_err(|reason| BakeError::Set { value: o.raw.clone(), reason })?;
    }
    Ok(())
}

/// `*` and `?` wildcards, as buildx matches `--set` target names.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

/// Depth-first order: every `target:` context before its user; a cycle
/// is named in full.
fn build_order(targets: &[(String, Target)]) -> Result<Vec<String>, BakeError> {
    fn visit(
        name: &str,
        targets: &[(String, Target)],
        done: &mut Vec<String>,
        path: &mut Vec<String>,
    ) -> Result<(), BakeError> {
        if done.iter().any(|d| d == name) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|p| p == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name.to_string());
            return Err(BakeError::Cycle(cycle.join(" -> ")));
        }
        path.push(name.to_string());
        let target = &targets.iter().find(|(n, _)| n == name).expect("linked targets are resolved").1;
        for (_, linked) in links(target) {
            visit(&linked, targets, done, path)?;
        }
        path.pop();
        done.push(name.to_string());
        Ok(())
    }
    let mut names: Vec<&String> = targets.iter().map(|(n, _)| n).collect();
    names.sort();
    let mut done = Vec::new();
    for name in names {
        visit(name, targets, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(text: &str) -> Definition {
        super::super::hcl::load_hcl("t.hcl", text, &Default::default()).unwrap()
    }

    #[test]
    fn groups_inherits_and_set() {
        let d = def(r#"
group "default" { targets = ["g"] }
group "g" { targets = ["a", "b"] }
target "base" {
  args = { X = "1" }
  tags = ["base"]
}
target "a" {
  inherits = ["base"]
  tags = ["a"]
}
target "b" { inherits = ["base"] }
"#);
        let r = resolve(
            &d,
            &[],
            &["a.args.Y=2".into(), "*.platform=linux/amd64".into(), "b.tags=t1".into(), "b.tags=t2".into()],
            false,
        )
        .unwrap();
        let a = r.target("a").unwrap();
        assert_eq!(a.tags.as_deref().unwrap(), ["a"]);
        assert_eq!(a.args.as_ref().unwrap().len(), 2);
        assert_eq!(r.target("b").unwrap().tags.as_deref().unwrap(), ["t1", "t2"]);
        assert_eq!(r.target("b").unwrap().platforms.as_deref().unwrap(), ["linux/amd64"]);
        assert_eq!(r.groups[0], ("default".to_string(), vec!["g".to_string()]));
    }

    #[test]
    fn context_targets_come_first_and_cycles_fail() {
        let d = def(r#"
target "app" { contexts = { base = "target:base" } }
target "base" {}
"#);
        let r = resolve(&d, &["app".into()], &[], false).unwrap();
        let order: Vec<_> = r.targets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(order, ["base", "app"]);
        let d = def(r#"
target "a" { contexts = { x = "target:b" } }
target "b" { contexts = { y = "target:a" } }
"#);
        let err = resolve(&d, &["a".into()], &[], false).unwrap_err().to_string();
        assert!(err.contains("cycle") && err.contains("a -> b -> a"), "{err}");
    }

    #[test]
    fn bad_names_and_sets() {
        let d = def("target \"a\" {}\n");
        let err = resolve(&d, &["nope".into()], &[], false).unwrap_err().to_string();
        assert!(err.contains("\"nope\"") && err.contains("a"), "{err}");
        let err = resolve(&d, &["a".into()], &["a.bogus=1".into()], false).unwrap_err().to_string();
        assert!(err.contains("--set") && err.contains("bogus"), "{err}");
        assert!(glob_match("ap*", "app") && !glob_match("b*", "app"));
    }
}

#[cfg(test)]
mod known_names_tests {
    use super::known_names;

    /// Defect 9 of issue 20: 40,000 names on one line.
    #[test]
    fn many_names_are_cut_to_the_closest_ten() {
        let names: Vec<String> = (0..40_000).map(|i| format!("app-{i}")).collect();
        let listed = known_names("app-1234x", names.iter().map(String::as_str).collect());
        assert!(listed.starts_with("app-1234, "), "{listed}");
        assert!(listed.ends_with(" and 39990 more"), "{listed}");
        assert_eq!(listed.matches(", ").count(), 9, "{listed}");
        assert_eq!(known_names("x", vec!["b", "a"]), "b, a", "few names: all, in file order");
        assert_eq!(known_names("x", vec![]), "nothing");
    }
}
