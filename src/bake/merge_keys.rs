//! YAML merge keys (`<<: *anchor`, `<<: [*a, *b]`) in compose files,
//! resolved as compose-go's YAML library (go.yaml.in/yaml v4, which buildx
//! reads compose files with) resolves them: a mapping's own keys win over
//! merged ones; in a list of merged mappings the first that has a key wins;
//! a merged mapping's own merge keys are resolved first (nested merges);
//! merge keys are resolved at every depth (`build:`, `args:`, anywhere).
//! serde_yaml_ng expands aliases but leaves `<<` as an ordinary key, and its
//! `apply_merge` drops nested merges, hence this pass.
//!
//! The value of `<<` must be a mapping or a list of mappings; anything else
//! is refused with the YAML library's words and the line of the key.

use serde_yaml_ng::{Mapping, Value};

/// A merge key whose value is not a mapping or a list of mappings.
#[derive(Debug)]
pub(crate) struct MergeError {
    /// The keys leading to the offending `<<` (its own key last).
    pub(crate) path: Vec<String>,
}

impl MergeError {
    pub(crate) const MESSAGE: &'static str = "map merge requires map or sequence of maps as the value";

    /// `FILE:LINE` of the offending `<<`, found by following the path's
    /// keys through the text's indentation (block style); the file alone
    /// when the path cannot be followed (flow style).
    pub(crate) fn location(&self, file: &str, text: &str) -> String {
        match locate_path(text, &self.path) {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        }
    }
}

/// Resolves every merge key in `value`. Anchors are defined before they
/// are used, and mappings keep their order, so a bad merge inside an
/// anchored mapping is reported where the anchor is defined.
pub(crate) fn apply(value: Value) -> Result<Value, MergeError> {
    resolve(value, &mut Vec::new())
}

fn is_merge_key(key: &Value) -> bool {
    matches!(key, Value::String(s) if s == "<<")
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn resolve(value: Value, path: &mut Vec<String>) -> Result<Value, MergeError> {
    match value {
        Value::Mapping(map) => {
            let mut out = Mapping::new();
            let mut sources = None;
            for (key, value) in map {
                if is_merge_key(&key) {
                    // A second `<<` in one mapping is a duplicate key, which
                    // the parser already refused; the last one would win.
                    sources = Some(value);
                    continue;
                }
                path.push(key_name(&key));
                let value = resolve(value, path)?;
                path.pop();
                out.insert(key, value);
            }
            if let Some(sources) = sources {
                path.push("<<".to_string());
                let maps = match sources {
                    Value::Mapping(_) => vec![sources],
                    Value::Sequence(items) => {
                        if !items.iter().all(|item| matches!(item, Value::Mapping(_))) {
                            return Err(MergeError { path: path.clone() });
                        }
                        items
                    }
                    _ => return Err(MergeError { path: path.clone() }),
                };
                for source in maps {
                    let Value::Mapping(source) = resolve(source, path)? else { unreachable!("checked above") };
                    for (key, value) in source {
                        if !out.contains_key(&key) {
                            out.insert(key, value);
                        }
                    }
                }
                path.pop();
            }
            Ok(Value::Mapping(out))
        }
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(format!("[{i}]"));
                out.push(resolve(item, path)?);
                path.pop();
            }
            Ok(Value::Sequence(out))
        }
        Value::Tagged(mut tagged) => {
            tagged.value = resolve(std::mem::take(&mut tagged.value), path)?;
            Ok(Value::Tagged(tagged))
        }
        other => Ok(other),
    }
}

/// The 1-based line of the key at the end of `path`, following keys by
/// indentation: each key is looked for below the previous one, inside its
/// block. List items (`[N]`) are followed by counting `- ` entries.
fn locate_path(text: &str, path: &[String]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let meaningful = |line: &str| {
        let t = line.trim_start();
        !t.is_empty() && !t.starts_with('#')
    };
    // (line index, indentation of the block's keys' parent); -1 for the top.
    let mut at: Option<usize> = None;
    let mut parent_indent: isize = -1;
    // After a list item, its first key is on the dash's own line.
    let mut on_item = false;
    for key in path {
        let start = match at {
            Some(a) if on_item => a,
            Some(a) => a + 1,
            None => 0,
        };
        let mut found = None;
        if let Some(index) = key.strip_prefix('[').and_then(|k| k.strip_suffix(']')) {
            let want: usize = index.parse().ok()?;
            let mut seen = 0;
            for (n, line) in lines.iter().enumerate().skip(start) {
                if !meaningful(line) {
                    continue;
                }
                if (indent(line) as isize) < parent_indent + 1 && at.is_some() {
                    break;
                }
                if line.trim_start().starts_with("- ") || line.trim_start() == "-" {
                    if seen == want {
                        found = Some(n);
                        break;
                    }
                    seen += 1;
                }
            }
            let n = found?;
            // Keys of the item are indented past its dash.
            parent_indent = indent(lines[n]) as isize;
            at = Some(n);
            on_item = true;
            continue;
        }
        for (n, line) in lines.iter().enumerate().skip(start) {
            if !meaningful(line) {
                continue;
            }
            let ind = indent(line) as isize;
            let item_line = on_item && Some(n) == at;
            if at.is_some() && !item_line && ind <= parent_indent {
                break;
            }
            let t = line.trim_start().trim_start_matches("- ");
            let keyed = [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':")];
            if keyed.iter().any(|k| t.starts_with(k.as_str())) {
                found = Some(n);
                break;
            }
        }
        let n = found?;
        parent_indent = indent(lines[n]) as isize;
        if on_item && Some(n) == at {
            // The key sits after the dash: its block is indented past it.
            parent_indent += 2;
        }
        at = Some(n);
        on_item = false;
    }
    at.map(|n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(text: &str) -> Value {
        apply(serde_yaml_ng::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn own_keys_win_then_the_first_merged_mapping() {
        let v = merged("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 0\n");
        assert_eq!(v["c"]["x"], 0);
        assert_eq!(v["c"]["y"], 1);
        assert_eq!(v["c"]["z"], 2);
        assert!(v["c"].get("<<").is_none());
    }

    #[test]
    fn nested_merges_and_merges_inside_values() {
        let v = merged(
            "base: &base {context: ./base, args: &args {A: '1'}}\n\
             mid: &mid\n  <<: *base\n  dockerfile: Dockerfile.mid\n\
             svc:\n  build:\n    <<: *mid\n    args:\n      <<: *args\n      B: '2'\n",
        );
        let build = &v["svc"]["build"];
        assert_eq!(build["context"], "./base");
        assert_eq!(build["dockerfile"], "Dockerfile.mid");
        assert_eq!(build["args"]["A"], "1");
        assert_eq!(build["args"]["B"], "2");
    }

    #[test]
    fn anchors_that_cycle_are_refused_by_the_parser() {
        // serde_yaml_ng expands aliases as it reads, so an alias inside its
        // own anchor never ends; it stops at its recursion limit, and
        // compose::load says what that means.
        for text in ["a: &x\n  b: *x\n", "s: &s\n  app:\n    build:\n      <<: *s\n"] {
            let err = serde_yaml_ng::from_str::<Value>(text).unwrap_err();
            assert!(err.to_string().contains("recursion limit exceeded"), "{err}");
            assert!(err.location().is_some());
        }
    }

    #[test]
    fn a_merge_of_a_scalar_names_its_line() {
        let text = "services:\n  app:\n    build:\n      context: .\n      <<: 5\n";
        let err = apply(serde_yaml_ng::from_str(text).unwrap()).unwrap_err();
        assert_eq!(err.location("c.yaml", text), "c.yaml:5");
        let text = "x: &x [1]\nservices:\n  app:\n    build:\n      <<: [*x]\n";
        let err = apply(serde_yaml_ng::from_str(text).unwrap()).unwrap_err();
        assert_eq!(err.location("c.yaml", text), "c.yaml:5");
        let text = "x: &x\n  - a: 1\ny:\n  - <<: 1\n";
        let err = apply(serde_yaml_ng::from_str(text).unwrap()).unwrap_err();
        assert_eq!(err.location("c.yaml", text), "c.yaml:4");
    }
}
