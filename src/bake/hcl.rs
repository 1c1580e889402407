//! `docker-bake.hcl` and `docker-bake.json`. HCL is parsed and evaluated
//! with `hcl-rs` (the maintained Rust HCL implementation; its evaluator does
//! templates, conditionals, `for` expressions and function calls), given the
//! file's variables (a variable's value comes from the environment variable
//! of the same name when set, as in buildx) and the functions bake files
//! reach for most. JSON files have the same blocks as objects; their strings
//! are HCL templates evaluated the same way. `matrix` expands a target into
//! one per combination, named by its `name` attribute.

use std::collections::BTreeMap;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Expression, Value};

use super::{BakeError, Definition, Env, Target, Variable};

pub(crate) fn load_hcl(file: &str, text: &str, env: &Env) -> Result<Definition, BakeError> {
    let body = hcl::parse(text).map_err(|e| parse_error(file, &e.to_string()))?;
    let mut blocks = Blocks::default();
    for block in body.blocks() {
        let label = block.labels().first().map(|l| l.as_str().to_string());
        let attrs: Vec<(String, Expression)> =
            block.body().attributes().map(|a| (a.key().to_string(), a.expr().clone())).collect();
        let at = || format!("{file}:{}", line_of(text, block.identifier(), label.as_deref()));
        let Some(label) = label.clone() else {
            return Err(BakeError::Invalid { location: at(), message: format!("{} needs a name", block.identifier()) });
        };
        match block.identifier() {
            "variable" => {
                for check in block.body().blocks().filter(|b| b.identifier() == "validation") {
                    let get = |key: &str| check.body().attributes().find(|a| a.key() == key).map(|a| a.expr().clone());
                    let condition = get("condition").ok_or_else(|| BakeError::Invalid {
                        location: at(),
                        message: format!("variable {label:?}: a validation needs a condition"),
                    })?;
                    blocks.validations.push((label.clone(), condition, get("error_message"), at()));
                }
                blocks.variables.push((label, attrs, at()))
            }
            "target" => blocks.targets.push((label, attrs, at())),
            "group" => blocks.groups.push((label, attrs, at())),
            "function" => {
                let function = super::userfunc::UserFunc::from_attrs(&label, &attrs).map_err(|message| {
                    BakeError::Invalid { location: at(), message: format!("function {label:?}: {message}") }
                })?;
                blocks.functions.push(function);
            }
            other => return Err(BakeError::Invalid { location: at(), message: format!("unknown block {other:?}") }),
        }
    }
    blocks.evaluate(env)
}

pub(crate) fn load_json(file: &str, text: &str, env: &Env) -> Result<Definition, BakeError> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| BakeError::Invalid {
        location: format!("{file}:{}:{}", e.line(), e.column()),
        message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
    })?;
    let invalid = |message: String| BakeError::Invalid { location: file.to_string(), message };
    let object = doc.as_object().ok_or_else(|| invalid("expected a JSON object".into()))?;
    let mut blocks = Blocks::default();
    for (kind, entries) in object {
        let entries = entries.as_object().ok_or_else(|| invalid(format!("{kind}: expected an object")))?;
        for (name, body) in entries {
            let body = body.as_object().ok_or_else(|| invalid(format!("{kind} {name:?}: expected an object")))?;
            let attrs = body
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_expression(v)?)))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| invalid(format!("{kind} {name:?}: {e}")))?;
            let at = format!("{file}: {kind} {name:?}");
            match kind.as_str() {
                "variable" => blocks.variables.push((name.clone(), attrs, at)),
                "target" => blocks.targets.push((name.clone(), attrs, at)),
                "group" => blocks.groups.push((name.clone(), attrs, at)),
                other => return Err(invalid(format!("unknown block {other:?}"))),
            }
        }
    }
    blocks.evaluate(env)
}

/// A JSON value as an HCL expression: strings become templates, so
/// `"${TAG}"` is interpolated as in buildx's JSON files.
fn json_expression(value: &serde_json::Value) -> Result<Expression, String> {
    Ok(match value {
        serde_json::Value::String(s) if s.contains("${") || s.contains("%{") => {
            let quoted = serde_json::to_string(s).map_err(|e| e.to_string())?;
            quoted.parse::<Expression>().map_err(|e| format!("{s:?}: {e}"))?
        }
        serde_json::Value::Array(items) => {
            Expression::Array(items.iter().map(json_expression).collect::<Result<_, _>>()?)
        }
        serde_json::Value::Object(map) => {
            let mut object = hcl::Object::new();
            for (k, v) in map {
                object.insert(hcl::ObjectKey::from(k.as_str()), json_expression(v)?);
            }
            Expression::Object(object)
        }
        other => Expression::from(hcl::to_value(other).map_err(|e| e.to_string())?),
    })
}

type Attrs = Vec<(String, Expression)>;

/// A target's attributes as evaluated, what `target.NAME.ATTR` reads.
type Evaluated = hcl::Map<String, Value>;

/// The blocks of one file, by kind: (name, attributes, where for errors).
#[derive(Default)]
struct Blocks {
    functions: Vec<super::userfunc::UserFunc>,
    /// `validation` blocks of variables: (variable, condition, message, where).
    validations: Vec<(String, Expression, Option<Expression>, String)>,
    variables: Vec<(String, Attrs, String)>,
    targets: Vec<(String, Attrs, String)>,
    groups: Vec<(String, Attrs, String)>,
}

impl Blocks {
    fn evaluate(mut self, env: &Env) -> Result<Definition, BakeError> {
        let _functions = super::userfunc::install(std::mem::take(&mut self.functions))
            .map_err(|message| BakeError::Invalid { location: "function".into(), message })?;
        let mut ctx = context();
        let mut definition = Definition::default();
        let values = self.variables(env)?;
        super::userfunc::set_variables(values.iter().map(|(n, v, _)| (n.clone(), v.clone())).collect());
        for (name, value, description) in values {
            definition.variables.push(Variable { name: name.clone(), value: display(&value), description });
            ctx.declare_var(name, value);
        }
        // Checked once every variable has its value, as buildx does.
        for (name, condition, message, at) in &self.validations {
            let what = format!("variable {name:?}: validation");
            if eval(condition, &ctx, at, &what)? != Value::Bool(true) {
                let message = match message {
                    Some(message) => display(&eval(message, &ctx, at, &what)?).unwrap_or_default(),
                    None => "the condition is false".to_string(),
                };
                return Err(invalid(at, format!("variable {name:?}: {message}")));
            }
        }
        for (name, attrs, at) in &self.groups {
            let mut members = Vec::new();
            for (key, expr) in attrs {
                let value = eval(expr, &ctx, at, &format!("group {name:?}: {key}"))?;
                match key.as_str() {
                    "targets" => {
                        members =
                            string_list(&value).map_err(|e| invalid(at, format!("group {name:?}: targets: {e}")))?
                    }
                    "description" => {}
                    other => return Err(invalid(at, format!("group {name:?}: unknown attribute {other:?}"))),
                }
            }
            definition.add_group(name.clone(), members);
        }
        // Targets may refer to each other's attributes (`target.base.tags`):
        // evaluate in passes, each with the targets done so far, until all
        // are done or a pass makes no progress (then its first error stands).
        let mut evaluated = hcl::Map::new();
        let mut pending: Vec<&(String, Attrs, String)> = self.targets.iter().collect();
        while !pending.is_empty() {
            ctx.declare_var("target", Value::Object(evaluated.clone()));
            let mut retry = Vec::new();
            let mut first_error = None;
            for block in &pending {
                match target_block(block, &ctx, &mut definition) {
                    Ok(values) => {
                        for (name, attrs) in values {
                            evaluated.insert(name, Value::Object(attrs));
                        }
                    }
                    Err(error) => {
                        first_error.get_or_insert(error);
                        retry.push(*block);
                    }
                }
            }
            if retry.len() == pending.len() {
                return Err(first_error.expect("a failed pass has an error"));
            }
            pending = retry;
        }
        Ok(definition)
    }

    /// Variables in dependency order: defaults may use other variables, so
    /// evaluation repeats until nothing new resolves.
    fn variables(&self, env: &Env) -> Result<Vec<(String, Value, Option<String>)>, BakeError> {
        let mut ctx = context();
        let mut done: BTreeMap<String, Value> = BTreeMap::new();
        let mut last_error = None;
        for _ in 0..=self.variables.len() {
            last_error = None;
            for (name, attrs, at) in &self.variables {
                if done.contains_key(name) {
                    continue;
                }
                let default = match attrs.iter().find(|(k, _)| k == "default") {
                    Some((_, expr)) => match expr.evaluate(&ctx) {
                        Ok(v) => v,
                        Err(e) => {
                            last_error = Some(invalid(at, format!("variable {name:?}: {e}")));
                            continue;
                        }
                    },
                    // buildx: a variable without a default is the empty string.
                    None => Value::from(""),
                };
                let value = match env.get(name) {
                    Some(text) => typed_like(&default, text)
                        .map_err(|e| invalid(at, format!("variable {name:?} from the environment: {e}")))?,
                    None => default,
                };
                ctx.declare_var(name.clone(), value.clone());
                done.insert(name.clone(), value);
            }
            if last_error.is_none() {
                break;
            }
        }
        if let Some(error) = last_error {
            return Err(error);
        }
        Ok(self
            .variables
            .iter()
            .map(|(name, attrs, _)| {
                let description = attrs.iter().find(|(k, _)| k == "description").and_then(|(_, e)| match e {
                    Expression::String(s) => Some(s.clone()),
                    _ => None,
                });
                (name.clone(), done[name].clone(), description)
            })
            .collect())
    }
}

/// An environment value for a variable whose default is a bool or a
/// number is read as one, as buildx does.
fn typed_like(default: &Value, text: &str) -> Result<Value, String> {
    match default {
        Value::Bool(_) => crate::output::parse::parse_go_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| format!("{text:?} is not a boolean")),
        Value::Number(_) => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<f64>().map(Value::from))
            .map_err(|_| format!("{text:?} is not a number")),
        _ => Ok(Value::String(text.to_string())),
    }
}

/// One `target` block: one target, or one per matrix combination. Returns
/// each target's evaluated attributes, for `target.NAME.ATTR` references.
fn target_block(
    (name, attrs, at): &(String, Attrs, String),
    ctx: &Context,
    definition: &mut Definition,
) -> Result<Vec<(String, Evaluated)>, BakeError> {
    let Some((_, expr)) = attrs.iter().find(|(k, _)| k == "matrix") else {
        let (target, values) = target(name, attrs, ctx, at)?;
        definition.add_target(name.clone(), target);
        return Ok(vec![(name.clone(), values)]);
    };
    let matrix = eval(expr, ctx, at, &format!("target {name:?}: matrix"))?;
    let combinations = expand_matrix(&matrix).map_err(|e| invalid(at, format!("target {name:?}: matrix: {e}")))?;
    let name_expr = attrs
        .iter()
        .find(|(k, _)| k == "name")
        .ok_or_else(|| invalid(at, format!("target {name:?}: a matrix target needs a name attribute")))?;
    let mut done = Vec::new();
    for combination in combinations {
        let mut ctx = ctx.clone();
        for (k, v) in &combination {
            ctx.declare_var(k.clone(), v.clone());
        }
        let new_name = eval(&name_expr.1, &ctx, at, &format!("target {name:?}: name"))?;
        let new_name = display(&new_name).unwrap_or_default();
        done.push((new_name.clone(), target(&new_name, attrs, &ctx, at)?));
    }
    // Only once every combination evaluated, so a retried block adds nothing twice.
    let names: Vec<String> = done.iter().map(|(n, _)| n.clone()).collect();
    let mut values = Vec::new();
    for (new_name, (target, attrs)) in done {
        definition.add_target(new_name.clone(), target);
        values.push((new_name, attrs));
    }
    // The original name stands for all of them, as a group.
    definition.add_group(name.clone(), names);
    Ok(values)
}

fn target(name: &str, attrs: &Attrs, ctx: &Context, at: &str) -> Result<(Target, Evaluated), BakeError> {
    let mut values = hcl::Map::new();
    let mut target = Target::default();
    for (key, expr) in attrs {
        if key == "matrix" || key == "name" {
            continue;
        }
        let what = format!("target {name:?}: {key}");
        let value = eval(expr, ctx, at, &what)?;
        values.insert(key.clone(), value.clone());
        if key == "inherits" {
            target.inherits = string_list(&value).map_err(|e| invalid(at, format!("{what}: {e}")))?;
            continue;
        }
        apply(&mut target, key, &value).map_err(|e| invalid(at, format!("{what}: {e}")))?;
    }
    Ok((target, values))
}

/// Sets attribute `key` from an evaluated value: lists item by item, maps
/// key by key, null leaves it unset.
fn apply(target: &mut Target, key: &str, value: &Value) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => {
            // An empty list is still "set" (it clears an inherited one).
            target.set_empty_list(key)?;
            for item in items {
                // Objects (`{ type = "sbom" }`) are buildx's other form of a CSV spec.
                let item = display(item).or_else(|| object_spec(item)).ok_or("expected a list of strings")?;
                target.set(key, None, &item, true)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            target.set_empty_map(key)?;
            for (k, v) in map {
                // A null value in args means "not set" (buildx leaves it out).
                if let Some(v) = display(v) {
                    target.set(key, Some(k), &v, true)?;
                }
            }
            Ok(())
        }
        other => target.set(key, None, &display(other).unwrap_or_default(), false),
    }
}

/// All combinations of a matrix, in declaration order.
fn expand_matrix(matrix: &Value) -> Result<Vec<Vec<(String, Value)>>, String> {
    let Value::Object(map) = matrix else { return Err("expected an object of lists".into()) };
    let mut combinations: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in map {
        let Value::Array(values) = values else { return Err(format!("{key}: expected a list")) };
        combinations = combinations
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((key.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    Ok(combinations)
}

fn eval(expr: &Expression, ctx: &Context, at: &str, what: &str) -> Result<Value, BakeError> {
    expr.evaluate(ctx).map_err(|e| invalid(at, format!("{what}: {e}")))
}

fn invalid(at: &str, message: String) -> BakeError {
    BakeError::Invalid { location: at.to_string(), message }
}

/// A scalar as a string (numbers and booleans as HCL prints them).
fn display(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `{ type = "local", dest = "out" }` → `type=local,dest=out`, a field
/// with a comma or quote quoted as CSV.
fn object_spec(value: &Value) -> Option<String> {
    let Value::Object(map) = value else { return None };
    let mut fields = Vec::new();
    for (k, v) in map {
        let field = format!("{k}={}", display(v)?);
        fields.push(if field.contains(',') || field.contains('"') {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field
        });
    }
    Some(fields.join(","))
}

fn string_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => {
            items.iter().map(|v| display(v).ok_or_else(|| "expected a list of strings".to_string())).collect()
        }
        _ => Err("expected a list of strings".into()),
    }
}

/// The line of `target "NAME"` (or the block kind) in the file's text.
fn line_of(text: &str, kind: &str, label: Option<&str>) -> usize {
    let wanted = label.map(|l| format!("\"{l}\""));
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.starts_with(kind) && wanted.as_ref().is_none_or(|w| line.contains(w.as_str()))
        })
        .map_or(1, |n| n + 1)
}

/// hcl-rs says `HCL parse error in line L, column C` and shows the line;
/// put the position first, as `FILE:LINE:COL: message`.
fn parse_error(file: &str, message: &str) -> BakeError {
    let position = regex::Regex::new(r"line (\d+), column (\d+)")
        .ok()
        .and_then(|re| re.captures(message).map(|c| format!("{}:{}", &c[1], &c[2])));
    let location = match position {
        Some(position) => format!("{file}:{position}"),
        None => file.to_string(),
    };
    let text = message.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(message).trim();
    let text = text.trim_start_matches(['|', '=', ' ', '^']).trim();
    BakeError::Invalid { location, message: format!("cannot parse HCL: {text}") }
}

/// The evaluation context with the functions bake files use most (a
/// subset of buildx's stdlib, same names and meaning).
pub(crate) fn context() -> Context<'static> {
    let mut ctx = Context::new();
    let s = || ParamType::String;
    let any = || ParamType::Any;
    let f = |params: Vec<ParamType>, func: hcl::eval::Func| FuncDef::new(func, params);
    ctx.declare_func("upper", f(vec![s()], |a| Ok(Value::from(str_arg(&a, 0).to_uppercase()))));
    ctx.declare_func("lower", f(vec![s()], |a| Ok(Value::from(str_arg(&a, 0).to_lowercase()))));
    ctx.declare_func("trimspace", f(vec![s()], |a| Ok(Value::from(str_arg(&a, 0).trim()))));
    ctx.declare_func(
        "trimprefix",
        f(vec![s(), s()], |a| Ok(Value::from(str_arg(&a, 0).strip_prefix(str_arg(&a, 1)).unwrap_or(str_arg(&a, 0))))),
    );
    ctx.declare_func(
        "trimsuffix",
        f(vec![s(), s()], |a| Ok(Value::from(str_arg(&a, 0).strip_suffix(str_arg(&a, 1)).unwrap_or(str_arg(&a, 0))))),
    );
    ctx.declare_func(
        "replace",
        f(vec![s(), s(), s()], |a| Ok(Value::from(str_arg(&a, 0).replace(str_arg(&a, 1), str_arg(&a, 2))))),
    );
    ctx.declare_func(
        "split",
        f(vec![s(), s()], |a| Ok(Value::Array(str_arg(&a, 1).split(str_arg(&a, 0)).map(Value::from).collect()))),
    );
    ctx.declare_func(
        "join",
        f(vec![s(), ParamType::array_of(s())], |a| {
            let items: Vec<String> = match &a[1] {
                Value::Array(items) => items.iter().filter_map(display).collect(),
                _ => Vec::new(),
            };
            Ok(Value::from(items.join(str_arg(&a, 0))))
        }),
    );
    ctx.declare_func("equal", f(vec![any(), any()], |a| Ok(Value::Bool(a[0] == a[1]))));
    ctx.declare_func("notequal", f(vec![any(), any()], |a| Ok(Value::Bool(a[0] != a[1]))));
    ctx.declare_func(
        "and",
        f(vec![ParamType::Bool, ParamType::Bool], |a| {
            Ok(Value::Bool(a[0] == Value::Bool(true) && a[1] == Value::Bool(true)))
        }),
    );
    ctx.declare_func(
        "or",
        f(vec![ParamType::Bool, ParamType::Bool], |a| {
            Ok(Value::Bool(a[0] == Value::Bool(true) || a[1] == Value::Bool(true)))
        }),
    );
    ctx.declare_func("not", f(vec![ParamType::Bool], |a| Ok(Value::Bool(a[0] != Value::Bool(true)))));
    ctx.declare_func(
        "coalesce",
        FuncDef::builder().variadic_param(any()).build(|a| {
            Ok(a.iter().find(|v| !matches!(v, Value::Null) && **v != Value::from("")).cloned().unwrap_or(Value::Null))
        }),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder().variadic_param(ParamType::array_of(any())).build(|a| {
            Ok(Value::Array(
                a.iter()
                    .flat_map(|v| match v {
                        Value::Array(items) => items.clone(),
                        _ => Vec::new(),
                    })
                    .collect(),
            ))
        }),
    );
    ctx.declare_func(
        "length",
        f(vec![any()], |a| {
            Ok(Value::from(match &a[0] {
                Value::Array(items) => items.len(),
                Value::Object(map) => map.len(),
                Value::String(s) => s.chars().count(),
                _ => return Err("length needs a list, map or string".into()),
            }))
        }),
    );
    ctx.declare_func(
        "substr",
        f(vec![s(), ParamType::Number, ParamType::Number], |a| {
            let text: Vec<char> = str_arg(&a, 0).chars().collect();
            let num = |v: &Value| v.as_i64().unwrap_or(0);
            let offset = num(&a[1]).clamp(0, text.len() as i64) as usize;
            let length = num(&a[2]);
            let end = if length < 0 { text.len() } else { (offset + length as usize).min(text.len()) };
            Ok(Value::from(text[offset..end].iter().collect::<String>()))
        }),
    );
    ctx.declare_func(
        "contains",
        f(vec![ParamType::array_of(any()), any()], |a| {
            Ok(Value::Bool(matches!(&a[0], Value::Array(items) if items.contains(&a[1]))))
        }),
    );
    more_functions(&mut ctx);
    super::userfunc::declare(&mut ctx);
    ctx
}

/// The rest of the functions buildx users reach for: strings, paths,
/// collections, time and regular expressions (names and meaning from
/// buildx's stdlib, itself go-cty's).
fn more_functions(ctx: &mut Context<'static>) {
    let s = || ParamType::String;
    let any = || ParamType::Any;
    let f = |params: Vec<ParamType>, func: hcl::eval::Func| FuncDef::new(func, params);
    ctx.declare_func(
        "title",
        f(vec![s()], |a| {
            let mut out = String::new();
            let mut start = true;
            for c in str_arg(&a, 0).chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            Ok(Value::from(out))
        }),
    );
    ctx.declare_func(
        "trim",
        f(vec![s(), s()], |a| {
            let chars: Vec<char> = str_arg(&a, 1).chars().collect();
            Ok(Value::from(str_arg(&a, 0).trim_matches(|c| chars.contains(&c))))
        }),
    );
    ctx.declare_func("strlen", f(vec![s()], |a| Ok(Value::from(str_arg(&a, 0).chars().count()))));
    // buildx's sanitize: anything but letters, digits, `_` and `-` becomes `_`.
    ctx.declare_func(
        "sanitize",
        f(vec![s()], |a| {
            Ok(Value::from(
                str_arg(&a, 0)
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                    .collect::<String>(),
            ))
        }),
    );
    ctx.declare_func(
        "basename",
        f(vec![s()], |a| {
            let path = std::path::Path::new(str_arg(&a, 0));
            Ok(Value::from(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()))
        }),
    );
    ctx.declare_func(
        "dirname",
        f(vec![s()], |a| {
            let path = std::path::Path::new(str_arg(&a, 0));
            let dir = path.parent().map(|p| p.to_string_lossy().into_owned()).filter(|p| !p.is_empty());
            Ok(Value::from(dir.unwrap_or_else(|| ".".into())))
        }),
    );
    ctx.declare_func(
        "regex_replace",
        f(vec![s(), s(), s()], |a| {
            let re = regex::Regex::new(str_arg(&a, 1)).map_err(|e| e.to_string())?;
            // Go's `$1` and `${1}` references read the same in the regex crate.
            Ok(Value::from(re.replace_all(str_arg(&a, 0), str_arg(&a, 2)).into_owned()))
        }),
    );
    ctx.declare_func(
        "timestamp",
        f(vec![], |_| Ok(Value::from(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()))),
    );
    ctx.declare_func("formatdate", f(vec![s(), s()], |a| formatdate(str_arg(&a, 0), str_arg(&a, 1)).map(Value::from)));
    ctx.declare_func(
        "format",
        FuncDef::builder().param(s()).variadic_param(any()).build(|a| {
            let mut args = a.iter().skip(1);
            let mut out = String::new();
            let mut chars = str_arg(&a, 0).chars().peekable();
            while let Some(c) = chars.next() {
                if c != '%' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('%') => out.push('%'),
                    Some('s' | 'd' | 'v') => {
                        let value = args.next().ok_or("format: not enough arguments")?;
                        out.push_str(&display(value).ok_or("format: only strings, numbers and booleans")?);
                    }
                    other => return Err(format!("format: unsupported verb %{}", other.unwrap_or(' '))),
                }
            }
            Ok(Value::from(out))
        }),
    );
    ctx.declare_func(
        "lookup",
        FuncDef::builder().params([any(), s()]).variadic_param(any()).build(|a| match (&a[0], a.get(2)) {
            (Value::Object(map), default) => match map.get(str_arg(&a, 1)) {
                Some(value) => Ok(value.clone()),
                None => default.cloned().ok_or_else(|| format!("lookup: no key {:?}", str_arg(&a, 1))),
            },
            _ => Err("lookup needs a map".into()),
        }),
    );
    ctx.declare_func(
        "keys",
        f(vec![any()], |a| match &a[0] {
            Value::Object(map) => Ok(Value::Array(map.keys().map(|k| Value::from(k.as_str())).collect())),
            _ => Err("keys needs a map".into()),
        }),
    );
    ctx.declare_func(
        "values",
        f(vec![any()], |a| match &a[0] {
            Value::Object(map) => Ok(Value::Array(map.values().cloned().collect())),
            _ => Err("values needs a map".into()),
        }),
    );
    ctx.declare_func(
        "merge",
        FuncDef::builder().variadic_param(any()).build(|a| {
            let mut out = hcl::Map::new();
            for value in a.iter() {
                match value {
                    Value::Object(map) => out.extend(map.iter().map(|(k, v)| (k.clone(), v.clone()))),
                    Value::Null => {}
                    _ => return Err("merge needs maps".into()),
                }
            }
            Ok(Value::Object(out))
        }),
    );
    ctx.declare_func(
        "element",
        f(vec![any(), ParamType::Number], |a| match &a[0] {
            Value::Array(items) if !items.is_empty() => {
                let index = a[1].as_i64().unwrap_or(0).rem_euclid(items.len() as i64) as usize;
                Ok(items[index].clone())
            }
            _ => Err("element needs a non-empty list".into()),
        }),
    );
    ctx.declare_func(
        "distinct",
        f(vec![any()], |a| match &a[0] {
            Value::Array(items) => {
                let mut out: Vec<Value> = Vec::new();
                for item in items {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            _ => Err("distinct needs a list".into()),
        }),
    );
    ctx.declare_func(
        "compact",
        f(vec![any()], |a| match &a[0] {
            Value::Array(items) => Ok(Value::Array(
                items.iter().filter(|v| !matches!(v, Value::Null) && **v != Value::from("")).cloned().collect(),
            )),
            _ => Err("compact needs a list".into()),
        }),
    );
    ctx.declare_func(
        "reverse",
        f(vec![any()], |a| match &a[0] {
            Value::Array(items) => Ok(Value::Array(items.iter().rev().cloned().collect())),
            Value::String(text) => Ok(Value::from(text.chars().rev().collect::<String>())),
            _ => Err("reverse needs a list or a string".into()),
        }),
    );
    ctx.declare_func(
        "flatten",
        f(vec![any()], |a| {
            fn flat(value: &Value, out: &mut Vec<Value>) {
                match value {
                    Value::Array(items) => items.iter().for_each(|v| flat(v, out)),
                    other => out.push(other.clone()),
                }
            }
            let mut out = Vec::new();
            flat(&a[0], &mut out);
            Ok(Value::Array(out))
        }),
    );
    ctx.declare_func("uuidv4", f(vec![], |_| Ok(Value::from(uuid::Uuid::new_v4().to_string()))));
    ctx.declare_func("homedir", f(vec![], |_| Ok(Value::from(std::env::var("HOME").unwrap_or_default()))));
}

/// go-cty's `formatdate` for the common tokens: `YYYY YY MM M DD D hh h mm
/// m ss s ZZZ`, `'literal'`; `timestamp` is RFC 3339.
fn formatdate(format: &str, timestamp: &str) -> Result<String, String> {
    use chrono::{Datelike, Timelike};
    let time = chrono::DateTime::parse_from_rfc3339(timestamp)
        .map_err(|e| format!("formatdate: {timestamp:?} is not an RFC 3339 timestamp: {e}"))?;
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let end = chars[i + 1..].iter().position(|&c| c == '\'').map(|p| i + 1 + p).unwrap_or(chars.len());
            out.extend(&chars[i + 1..end]);
            i = end + 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let token: String = chars[i..i + run].iter().collect();
        let text = match token.as_str() {
            "YYYY" => format!("{:04}", time.year()),
            "YY" => format!("{:02}", time.year() % 100),
            "MM" => format!("{:02}", time.month()),
            "M" => time.month().to_string(),
            "DD" => format!("{:02}", time.day()),
            "D" => time.day().to_string(),
            "hh" => format!("{:02}", time.hour()),
            "h" => time.hour().to_string(),
            "mm" => format!("{:02}", time.minute()),
            "m" => time.minute().to_string(),
            "ss" => format!("{:02}", time.second()),
            "s" => time.second().to_string(),
            "ZZZ" if time.offset().local_minus_utc() == 0 => "UTC".to_string(),
            _ if c.is_ascii_alphabetic() => return Err(format!("formatdate: unsupported token {token:?}")),
            _ => token,
        };
        out.push_str(&text);
        i += run;
    }
    Ok(out)
}

fn str_arg(args: &FuncArgs, index: usize) -> &str {
    args.get(index).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
variable "TAG" { default = "1" }
variable "REPO" { default = "r/${lower("APP")}" }
group "default" { targets = ["app"] }
target "_common" {
  args = { BASE = "x" }
}
target "app" {
  inherits = ["_common"]
  tags = ["${REPO}:${TAG}", join("-", ["a", "b"])]
  no-cache = notequal(TAG, "1")
}
target "matrix" {
  name = "m-${v}"
  matrix = { v = ["a", "b"] }
  args = { V = v }
}
"#;

    #[test]
    fn evaluates_variables_functions_and_matrix() {
        let d = load_hcl("docker-bake.hcl", FILE, &[("TAG".to_string(), "2".to_string())].into()).unwrap();
        let app = d.target("app").unwrap();
        assert_eq!(app.tags.as_deref().unwrap(), ["r/app:2", "a-b"]);
        assert_eq!(app.no_cache, Some(true));
        assert_eq!(app.inherits, ["_common"]);
        assert_eq!(d.target("m-b").unwrap().args.as_ref().unwrap()["V"], "b");
        assert_eq!(d.group("matrix").unwrap(), ["m-a", "m-b"]);
    }

    #[test]
    fn more_functions_behave_like_buildx() {
        let text = r#"
target "t" {
  tags = [
    regex_replace("a.b.c", "\\.", "-"),
    sanitize("feat/x.y"),
    formatdate("YYYYMMDD-hhmm", "2024-03-05T07:08:09Z"),
    format("%s:%d", "app", 3),
    lookup({a = "1"}, "b", "none"),
    title("hello world"),
    basename("a/b/c.txt"),
  ]
  args = merge({A = "1"}, {B = "2"})
}
"#;
        let d = load_hcl("f.hcl", text, &Env::new()).unwrap();
        let t = d.target("t").unwrap();
        assert_eq!(
            t.tags.as_deref().unwrap(),
            ["a-b-c", "feat_x_y", "20240305-0708", "app:3", "none", "Hello World", "c.txt"]
        );
        assert_eq!(t.args.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn targets_refer_to_each_other() {
        let text = "target \"app\" {\n  tags = [\"${target.base.tags[0]}-app\"]\n}\ntarget \"base\" {\n  tags = [\"r/base\"]\n}\n";
        let d = load_hcl("r.hcl", text, &Env::new()).unwrap();
        assert_eq!(d.target("app").unwrap().tags.as_deref().unwrap(), ["r/base-app"]);
        let err =
            load_hcl("r.hcl", "target \"a\" {\n  tags = target.nope.tags\n}\n", &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("r.hcl:1: ") && err.contains("tags"), "{err}");
    }

    #[test]
    fn user_functions() {
        let text = r#"
variable "REPO" { default = "r" }
function "tag" {
  params = [name, version]
  result = "${REPO}/${name}:${version}"
}
function "tags" {
  params = [name]
  variadic_params = versions
  result = [for v in versions : tag(name, v)]
}
target "app" {
  tags = tags("app", "1", "latest")
}
"#;
        let d = load_hcl("u.hcl", text, &Env::new()).unwrap();
        assert_eq!(d.target("app").unwrap().tags.as_deref().unwrap(), ["r/app:1", "r/app:latest"]);
        let err = load_hcl(
            "u.hcl",
            "function \"f\" {\n  params = [a]\n  result = a\n}\ntarget \"t\" {\n  tags = [f()]\n}\n",
            &Env::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("f takes 1 argument, got 0"), "{err}");
        let err = load_hcl("u.hcl", "function \"f\" {\n  params = [a]\n}\n", &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("u.hcl:1: ") && err.contains("needs a result"), "{err}");
    }

    #[test]
    fn variable_validation() {
        let text = "variable \"TAG\" {\n  default = \"\"\n  validation {\n    condition = TAG != \"\"\n    error_message = \"TAG must be set\"\n  }\n}\n";
        let err = load_hcl("v.hcl", text, &Env::new()).unwrap_err().to_string();
        assert_eq!(err, "v.hcl:1: variable \"TAG\": TAG must be set");
        assert!(load_hcl("v.hcl", text, &[("TAG".to_string(), "1".to_string())].into()).is_ok());
    }

    #[test]
    fn json_strings_are_templates() {
        let text = r#"{"variable": {"TAG": {"default": "3"}}, "target": {"app": {"tags": ["r/app:${TAG}"], "args": {"A": "1"}}}}"#;
        let d = load_json("docker-bake.json", text, &Env::new()).unwrap();
        assert_eq!(d.target("app").unwrap().tags.as_deref().unwrap(), ["r/app:3"]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = load_hcl("b.hcl", "target \"a\" {\n  tags = [\n}\n", &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("b.hcl:"), "{err}");
        let err = load_hcl("b.hcl", "\n\ntarget \"a\" {\n  tags = [NOPE]\n}\n", &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("b.hcl:3: ") && err.contains("NOPE"), "{err}");
        let err = load_hcl("b.hcl", "target \"a\" {\n  bogus = 1\n}\n", &Env::new()).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
