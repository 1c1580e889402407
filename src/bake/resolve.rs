//! From the merged files and the command line to the targets to build:
//! names are expanded through groups (recursively), `inherits` is applied
//! (parents first, so a child's own values win), then `--set` and
//! `--push` (`*.push=true`); targets named as another's context
//! (`target:NAME`) join the set and are ordered before it. Cycles, in
//! `inherits` or between contexts, are refused here, before any build.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{BakeError, Definition, SetProblem, Target};

/// The targets to build, each after the targets it uses as a context.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// `--print`'s groups: `default` lists what was asked for.
    pub(crate) groups: Vec<(String, Vec<String>)>,
    /// Targets in build order (a context target before its users).
    pub(crate) targets: Vec<(String, Target)>,
}

impl Resolved {
    pub(crate) fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// buildx's `--print` document, as text: serialised straight from the
    /// targets so fields keep buildx's order (a `serde_json::Value` would
    /// sort them).
    pub(crate) fn print_json(&self) -> Result<String, serde_json::Error> {
        let targets = self.targets.iter().map(|(n, t)| (n.as_str(), t)).collect();
        // Go's encoder: `<`, `>`, `&` and the line separators escaped.
        let bytes = crate::gojson::marshal_indent(&Print { group: self.print_groups(), target: targets });
        Ok(String::from_utf8(bytes).expect("JSON is UTF-8"))
    }

    /// buildx bake's `--call NAME,format=json` document: each target as
    /// `--print` shows it under `build`, and beside it the answer of its
    /// subrequest under the name given with it in `answers` (`check` for
    /// lint).
    pub(crate) fn call_json(&self, answers: &BTreeMap<String, (String, RawAnswer)>) -> String {
        /// Go marshals the map of a target's entries with sorted keys:
        /// `build` comes before every subrequest's name.
        struct Entry<'a> {
            build: &'a Target,
            answer: Option<&'a (String, RawAnswer)>,
        }
        impl serde::Serialize for Entry<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("build", self.build)?;
                if let Some((name, value)) = self.answer {
                    map.serialize_entry(name, value)?;
                }
                map.end()
            }
        }
        let targets =
            self.targets.iter().map(|(n, t)| (n.as_str(), Entry { build: t, answer: answers.get(n) })).collect();
        let document = crate::gojson::marshal_indent(&Print { group: self.print_groups(), target: targets });
        String::from_utf8(document).expect("JSON is UTF-8")
    }

    fn print_groups(&self) -> BTreeMap<&str, Group<'_>> {
        self.groups.iter().map(|(n, m)| (n.as_str(), Group { targets: m })).collect()
    }
}

/// A subrequest's answer in `--call ...,format=json`: its fields sorted
/// (Go's map), each value as the frontend wrote it.
pub(crate) type RawAnswer = BTreeMap<String, crate::gojson::RawJson>;

#[derive(serde::Serialize)]
struct Group<'a> {
    targets: &'a [String],
}

/// buildx's `--print` shape; groups are left out when there are none
/// (Go's `omitempty`).
#[derive(serde::Serialize)]
struct Print<'a, T> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    group: BTreeMap<&'a str, Group<'a>>,
    target: BTreeMap<&'a str, T>,
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
    let mut seen = Seen::default();
    for name in &asked {
        expand(definition, name, &mut wanted, &mut groups, &mut seen)?;
    }
    if wanted.is_empty() {
        return Err(BakeError::NothingToBuild(asked.join(", ")));
    }
    // buildx's `ReadTargets`: the default group printed is the file's
    // `default` group when it was asked for, plus every other name asked
    // for, sorted.
    let file_default = definition.group("default").filter(|_| asked.iter().any(|n| n == "default"));
    let mut default_members: Vec<String> = file_default.map(<[String]>::to_vec).unwrap_or_default();
    for name in &asked {
        if name == "default" && file_default.is_some() {
            continue;
        }
        default_members.push(name.clone());
    }
    default_members.sort();
    default_members.dedup();
    groups.retain(|(n, _)| n != "default");
    groups.insert(0, ("default".to_string(), default_members));

    let overrides = parse_overrides(overrides)?;
    // As buildx: a --set pattern that names no target is a mistake.
    for o in &overrides {
        if !definition.targets.iter().any(|(name, _)| glob_match(&o.pattern, name)) {
            return Err(BakeError::Set { value: o.raw.clone(), reason: SetProblem::NoTarget(o.pattern.clone()) });
        }
    }
    let wanted_set: HashSet<&String> = wanted.iter().collect();
    let mut resolved: HashMap<String, Target> = HashMap::new();
    let mut queue: Vec<String> = wanted.clone();
    while let Some(name) = queue.pop() {
        if resolved.contains_key(&name) {
            continue;
        }
        let mut target = inherited(definition, &name)?;
        apply_overrides(&name, &mut target, &overrides)?;
        if !wanted_set.contains(&name) {
            // Only another target's context: its image goes nowhere but to
            // its dependents (buildx's `cacheonly` output, also what it prints).
            target.outputs = Some(vec!["type=cacheonly".to_string()]);
        } else if push {
            target.push();
        }
        target.normalize();
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
        resolved.insert(name, target);
    }
    let order = build_order(&resolved)?;
    let targets = order
        .into_iter()
        .map(|name| {
            let target = resolved.remove(&name).expect("ordered from resolved");
            (name, target)
        })
        .collect();
    Ok(Resolved { groups, targets })
}

/// What [`expand`] has met so far, so that each name costs one look-up.
#[derive(Default)]
struct Seen {
    targets: HashSet<String>,
    groups: HashSet<String>,
    /// Groups whose members are all in `out`: walked once, however many
    /// groups name them (groups naming each other twice at each of forty
    /// levels would otherwise be walked 2^40 times).
    expanded: HashSet<String>,
}

/// Adds the targets `name` stands for (itself, or a group's members, and
/// theirs), walked with a stack of its own so deeply nested groups cannot
/// overflow the thread's stack.
fn expand(
    definition: &Definition,
    name: &str,
    out: &mut Vec<String>,
    groups: &mut Vec<(String, Vec<String>)>,
    seen: &mut Seen,
) -> Result<(), BakeError> {
    // (name, how many of its members have been expanded) for each group
    // being walked; its names form the path a cycle is reported with.
    let mut path: Vec<(&str, usize)> = Vec::new();
    let mut on_path: HashSet<&str> = HashSet::new();
    let mut next = Some(name);
    loop {
        if let Some(name) = next.take().filter(|n| !seen.expanded.contains(*n)) {
            if on_path.contains(name) {
                let mut cycle: Vec<&str> = path.iter().map(|(n, _)| *n).collect();
                cycle.push(name);
                return Err(BakeError::Cycle(format!("groups {}", cycle.join(" -> "))));
            }
            // A group and a target may share a name (matrix targets): the group wins.
            if let Some(members) = definition.group(name) {
                if seen.groups.insert(name.to_string()) {
                    groups.push((name.to_string(), members.to_vec()));
                }
                path.push((name, 0));
                on_path.insert(name);
            } else if definition.target(name).is_some() {
                if seen.targets.insert(name.to_string()) {
                    out.push(name.to_string());
                }
            } else {
                let mut known: Vec<&str> = definition.targets.iter().map(|(n, _)| n.as_str()).collect();
                known.extend(definition.groups.iter().map(|(n, _)| n.as_str()));
                return Err(BakeError::UnknownTarget { name: name.to_string(), known: known_names(name, known) });
            }
        }
        let Some((group, done)) = path.last_mut() else { return Ok(()) };
        let members = definition.group(group).expect("only groups are on the path");
        match members.get(*done) {
            Some(member) => {
                *done += 1;
                next = Some(member.as_str());
            }
            None => {
                on_path.remove(*group);
                seen.expanded.insert(group.to_string());
                path.pop();
            }
        }
    }
}

/// The target with its parents' attributes beneath its own. Walked with a
/// stack of its own rather than by recursion, so a file with an `inherits`
/// chain thousands long cannot overflow the thread's stack; each ancestor
/// is resolved once, however many times it is inherited.
fn inherited(definition: &Definition, name: &str) -> Result<Target, BakeError> {
    let lookup = |name: &str, child: &str| {
        definition.target(name).ok_or_else(|| BakeError::Target {
            target: child.to_string(),
            reason: format!("inherits from {name:?}, which no file defines"),
        })
    };
    let mut done: BTreeMap<String, Target> = BTreeMap::new();
    // (target, how many of its parents have been looked at)
    let mut stack: Vec<(String, usize)> = vec![(name.to_string(), 0)];
    lookup(name, "")?;
    while let Some(top) = stack.len().checked_sub(1) {
        let current = stack[top].0.clone();
        let own = lookup(&current, "")?;
        let next = stack[top].1;
        if let Some(parent) = own.inherits.get(next) {
            stack[top].1 += 1;
            if done.contains_key(parent) {
                continue;
            }
            if let Some(at) = stack.iter().position(|(n, _)| n == parent) {
                let mut cycle: Vec<String> = stack[at..].iter().map(|(n, _)| n.clone()).collect();
                cycle.push(parent.clone());
                return Err(BakeError::Cycle(format!("inherits {}", cycle.join(" -> "))));
            }
            lookup(parent, &current)?;
            stack.push((parent.clone(), 0));
            continue;
        }
        let mut base = Target::default();
        for parent in &own.inherits {
            base.merge(&done[parent]);
        }
        base.merge(own);
        base.inherits.clear();
        stack.pop();
        done.insert(current, base);
    }
    Ok(done.remove(name).expect("the asked-for target is resolved last"))
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

/// One `--set PATTERN.KEY[.SUB]=VALUE`.
#[derive(Debug)]
struct Override {
    raw: String,
    pattern: String,
    key: String,
    sub: Option<String>,
    value: String,
    /// `KEY+=VALUE`: add to the file's list rather than replace it.
    append: bool,
}

/// Attributes `KEY+=VALUE` may add to (buildx's list attributes).
const APPENDABLE: &[&str] = &[
    "output",
    "outputs",
    "cache-to",
    "cache-from",
    "tags",
    "platform",
    "platforms",
    "ssh",
    "attest",
    "entitlements",
    "entitlement",
    "annotations",
    "annotation",
    "ulimits",
    "no-cache-filter",
    "secret",
    "secrets",
];

fn parse_overrides(values: &[String]) -> Result<Vec<Override>, BakeError> {
    values
        .iter()
        .map(|raw| {
            let bad = |reason: SetProblem| BakeError::Set { value: raw.clone(), reason };
            let (lhs, value) = raw.split_once('=').ok_or_else(|| bad(SetProblem::Form))?;
            let (lhs, append) = match lhs.strip_suffix('+') {
                Some(lhs) => (lhs, true),
                None => (lhs, false),
            };
            let mut parts = lhs.splitn(3, '.');
            let pattern = parts.next().filter(|p| !p.is_empty()).ok_or_else(|| bad(SetProblem::Form))?;
            let key = parts.next().filter(|k| !k.is_empty()).ok_or_else(|| bad(SetProblem::Form))?;
            let sub = parts.next().map(str::to_string);
            if append && (sub.is_some() || !APPENDABLE.contains(&key)) {
                return Err(bad(SetProblem::NoAppend(key.to_owned())));
            }
            // Check the key and value now, so a typo fails even when no target matches.
            Target::default().set(key, sub.as_deref(), value, false).map_err(|reason| bad(reason.into()))?;
            Ok(Override {
                raw: raw.clone(),
                pattern: pattern.to_string(),
                key: key.to_string(),
                sub,
                value: value.to_string(),
                append,
            })
        })
        .collect()
}

fn apply_overrides(name: &str, target: &mut Target, overrides: &[Override]) -> Result<(), BakeError> {
    let mut seen = BTreeSet::new();
    for o in overrides.iter().filter(|o| glob_match(&o.pattern, name)) {
        // The first --set of a list replaces the file's list (unless it
        // is `+=`); later ones add to it.
        let append = !seen.insert(o.key.clone()) || o.append;
        target
            .set(&o.key, o.sub.as_deref(), &o.value, append)
            .map_err(|reason| BakeError::Set { value: o.raw.clone(), reason: reason.into() })?;
    }
    Ok(())
}

/// `*` and `?` wildcards, as buildx matches `--set` target names. The
/// classic two-pointer match: on a mismatch, the last `*` takes one more
/// character; linear space and at most `pattern × name` steps (the plain
/// recursive form backtracks exponentially on patterns like `*a*a*a*b`).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and where in the name it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((at, taken)) => {
                    pi = at + 1;
                    ni = taken + 1;
                    star = Some((at, taken + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Depth-first order: every `target:` context before its user; a cycle
/// is named in full. Walked with a stack of its own, so a chain of
/// thousands of linked targets cannot overflow the thread's stack.
fn build_order(targets: &HashMap<String, Target>) -> Result<Vec<String>, BakeError> {
    let mut names: Vec<&String> = targets.keys().collect();
    names.sort();
    let mut done: Vec<String> = Vec::new();
    let mut finished: HashSet<String> = HashSet::new();
    for name in names {
        // (target, its linked targets, how many of them were visited)
        let mut path: Vec<(String, Vec<String>, usize)> = Vec::new();
        let mut on_path: HashSet<String> = HashSet::new();
        let mut next = Some(name.clone());
        loop {
            if let Some(name) = next.take() {
                if !finished.contains(&name) {
                    if on_path.contains(&name) {
                        let at = path.iter().position(|(n, _, _)| *n == name).expect("on the path");
                        let mut cycle: Vec<String> = path[at..].iter().map(|(n, _, _)| n.clone()).collect();
                        cycle.push(name);
                        return Err(BakeError::Cycle(cycle.join(" -> ")));
                    }
                    let target = targets.get(&name).expect("linked targets are resolved");
                    let linked = links(target).into_iter().map(|(_, t)| t).collect();
                    on_path.insert(name.clone());
                    path.push((name, linked, 0));
                }
            }
            let Some((name, linked, visited)) = path.last_mut() else { break };
            match linked.get(*visited) {
                Some(link) => {
                    *visited += 1;
                    next = Some(link.clone());
                }
                None => {
                    on_path.remove(name.as_str());
                    finished.insert(name.clone());
                    done.push(std::mem::take(name));
                    path.pop();
                }
            }
        }
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
        let r = resolve(&d, &["a".into()], &["a.tags+=more".into()], false).unwrap();
        assert_eq!(r.target("a").unwrap().tags.as_deref().unwrap(), ["a", "more"]);
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
    fn a_long_inherits_chain_resolves_and_cycles_are_named() {
        let mut d = Definition::default();
        for i in 0..5000 {
            let t = Target {
                inherits: if i == 0 { vec![] } else { vec![format!("t{}", i - 1)] },
                args: Some([(format!("A{}", i % 3), i.to_string())].into()),
                ..Default::default()
            };
            d.add_target(format!("t{i}"), t);
        }
        let r = resolve(&d, &["t4999".into()], &[], false).unwrap();
        let args = r.target("t4999").unwrap().args.clone().unwrap();
        assert_eq!(args["A0"], "4998");
        assert_eq!(args["A1"], "4999");
        assert_eq!(args["A2"], "4997");
        let d = def("target \"a\" { inherits = [\"b\"] }\ntarget \"b\" { inherits = [\"a\"] }\n");
        let err = resolve(&d, &["a".into()], &[], false).unwrap_err().to_string();
        assert!(err.contains("inherits a -> b -> a"), "{err}");
        let d = def("target \"a\" { inherits = [\"nope\"] }\n");
        let err = resolve(&d, &["a".into()], &[], false).unwrap_err().to_string();
        assert!(err.contains("\"a\"") && err.contains("inherits from \"nope\""), "{err}");
    }

    #[test]
    fn bad_names_and_sets() {
        let d = def("target \"a\" {}\n");
        let err = resolve(&d, &["nope".into()], &[], false).unwrap_err().to_string();
        assert!(err.contains("\"nope\"") && err.contains("a"), "{err}");
        let err = resolve(&d, &["a".into()], &["a.bogus=1".into()], false).unwrap_err().to_string();
        assert!(err.contains("--set") && err.contains("bogus"), "{err}");
        let err = resolve(&d, &["a".into()], &["z*.tags=x".into()], false).unwrap_err().to_string();
        assert!(err.contains("could not find any target matching 'z*'"), "{err}");
        let err = resolve(&d, &["a".into()], &["a.context+=x".into()], false).unwrap_err().to_string();
        assert!(err.contains("does not support append"), "{err}");
        assert!(glob_match("ap*", "app") && !glob_match("b*", "app"));
    }
}

#[cfg(test)]
mod scale_tests {
    use super::*;

    #[test]
    fn glob_matches_as_buildx_and_never_backtracks_exponentially() {
        for (pattern, name, hit) in [
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("?", "", false),
            ("a*b?c", "axxbyc", true),
            ("a*b?c", "axxbc", false),
            ("*-arm64", "app-arm64", true),
            ("app-*-*", "app-1-2", true),
            ("app-*-*", "app-1", false),
            ("**a", "a", true),
        ] {
            assert_eq!(glob_match(pattern, name), hit, "{pattern:?} {name:?}");
        }
        // The recursive form took about 2^26 steps here.
        let pattern = format!("{}b", "*a".repeat(26));
        assert!(!glob_match(&pattern, &"a".repeat(80)));
    }

    /// Groups naming the next level twice, forty levels deep: each group is
    /// walked once (2^40 walks before), and a deep chain of groups and of
    /// `target:` links needs no deep stack.
    #[test]
    fn deep_and_diamond_groups_and_long_link_chains_resolve() {
        let mut d = Definition::default();
        d.add_target("leaf".into(), Target::default());
        d.add_group("g40".into(), vec!["leaf".into()]);
        for i in (0..40).rev() {
            d.add_group(format!("g{i}"), vec![format!("g{}", i + 1), format!("g{}", i + 1)]);
        }
        let r = resolve(&d, &["g0".into()], &[], false).unwrap();
        assert_eq!(r.targets.len(), 1);
        let mut d = Definition::default();
        for i in 0..20_000 {
            let contexts = (i > 0).then(|| [("up".to_string(), format!("target:t{}", i - 1))].into());
            d.add_target(format!("t{i}"), Target { contexts, ..Default::default() });
            d.add_group(format!("g{i}"), vec![if i == 0 { "t0".to_string() } else { format!("g{}", i - 1) }]);
        }
        let r = resolve(&d, &["t19999".into()], &[], false).unwrap();
        assert_eq!(r.targets.len(), 20_000);
        assert_eq!(r.targets[0].0, "t0");
        assert_eq!(r.targets[19_999].0, "t19999");
        let r = resolve(&d, &["g19999".into()], &[], false).unwrap();
        assert_eq!(r.targets.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["t0"]);
        d.add_group("g0".into(), vec!["g19999".into()]);
        let err = resolve(&d, &["g5".into()], &[], false).unwrap_err().to_string();
        assert!(err.starts_with("targets depend on each other in a cycle: groups g5 -> g4"), "{err}");
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
