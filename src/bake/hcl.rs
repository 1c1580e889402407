//! `docker-bake.hcl` and `docker-bake.json`. HCL is parsed and evaluated
//! with `hcl-rs` (the maintained Rust HCL implementation; its evaluator does
//! templates, conditionals, `for` expressions and function calls), given the
//! file's variables (a variable's value comes from the environment variable
//! of the same name when set, as in buildx), buildx's function library
//! ([`super::hcl_stdlib`], whose `lazy` module also evaluates what hcl-rs
//! cannot: `try`, `can`, `convert`, `for` in go-cty's order) and the file's
//! own functions ([`super::userfunc`]). JSON files have the same blocks as
//! objects; their strings are HCL templates evaluated the same way.
//! `matrix` expands a target into one per combination, named by its `name`
//! attribute. Errors name the file and the line of the attribute at fault.

use std::collections::BTreeMap;
use std::ops::Range;

use hcl::edit::Span;
use hcl::eval::Context;
use hcl::{Expression, Value};

use super::hcl_stdlib::lazy::Type;
use super::target::AttributeError;
use super::{hcl_vars, BakeError, Definition, Env, Target, Variable};

pub(crate) fn load_hcl(file: &str, text: &str, env: &Env) -> Result<Definition, BakeError> {
    // hcl-edit's tree (what `hcl::parse` reads through) keeps the byte span
    // of every block and attribute: errors name lines without searching the
    // text, which for thousands of blocks was quadratic.
    let body = hcl::edit::parser::parse_body(text).map_err(|e| parse_error(file, &hcl::Error::from(e).to_string()))?;
    let lines = LineIndex::new(text);
    let mut blocks = Blocks::default();
    for block in body.into_blocks() {
        let at = lines.at(file, block.span());
        let kind = block.ident.as_str().to_string();
        let Some(label) = block.labels.first().map(|l| l.as_str().to_string()) else {
            return Err(BakeError::Invalid { location: at, message: format!("{kind} needs a name") });
        };
        let mut place = Place { at: at.clone(), attrs: Vec::new() };
        let mut attrs: Attrs = Vec::new();
        let mut nested = Vec::new();
        for structure in block.body {
            match structure {
                hcl::edit::structure::Structure::Attribute(attr) => {
                    place.attrs.push((attr.key.as_str().to_string(), lines.at(file, attr.span()), attr.span()));
                    attrs.push((attr.key.as_str().to_string(), Expression::from(attr.value)));
                }
                hcl::edit::structure::Structure::Block(block) => nested.push(block),
            }
        }
        match kind.as_str() {
            "variable" => {
                for check in nested.into_iter().filter(|b| b.ident.as_str() == "validation") {
                    let mut condition = None;
                    let mut message = None;
                    for attr in check.body.into_attributes() {
                        match attr.key.as_str() {
                            "condition" => condition = Some(Expression::from(attr.value)),
                            "error_message" => message = Some(Expression::from(attr.value)),
                            _ => {}
                        }
                    }
                    let condition = condition.ok_or_else(|| BakeError::Invalid {
                        location: at.clone(),
                        message: format!("variable {label:?}: a validation needs a condition"),
                    })?;
                    blocks.validations.push((label.clone(), condition, message, at.clone()));
                }
                blocks.variables.push((label, attrs, place))
            }
            "target" => blocks.targets.push((label, attrs, place)),
            "group" => blocks.groups.push((label, attrs, place)),
            "function" => {
                let function = super::userfunc::UserFunc::from_attrs(&label, &attrs).map_err(|message| {
                    BakeError::Invalid { location: at.clone(), message: format!("function {label:?}: {message}") }
                })?;
                blocks.functions.push(function);
            }
            other => return Err(BakeError::Invalid { location: at, message: format!("unknown block {other:?}") }),
        }
    }
    blocks.source = Some(Source { text: text.to_string(), lines });
    blocks.evaluate(env)
}

/// An HCL file's text and where its lines start.
struct Source {
    text: String,
    lines: LineIndex,
}

/// The byte offset where each line starts, to turn a span into a line
/// number by binary search.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        LineIndex(std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }

    /// The 1-based line of byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset).max(1)
    }

    /// `FILE:LINE` of a span (the file alone when the parser gave none).
    fn at(&self, file: &str, span: Option<Range<usize>>) -> String {
        match span {
            Some(span) => format!("{file}:{}", self.line(span.start)),
            None => file.to_string(),
        }
    }
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
                .collect::<Result<Vec<_>, ValueError>>()
                .map_err(|e| bad_value(file, format!("{kind} {name:?}"), e))?;
            // JSON has no lines to name: errors name the block.
            let at = Place { at: format!("{file}: {kind} {name:?}"), attrs: Vec::new() };
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
fn json_expression(value: &serde_json::Value) -> Result<Expression, ValueError> {
    Ok(match value {
        // The decoded text is the template, as buildx's `ParseTemplate` of it
        // (quotes inside `${...}` are plain quotes, no HCL string escapes).
        serde_json::Value::String(s) if s.contains("${") || s.contains("%{") => {
            s.parse::<hcl::Template>().map_err(|error| ValueError::Template { text: s.clone(), error })?;
            Expression::TemplateExpr(Box::new(hcl::TemplateExpr::QuotedString(s.clone())))
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
        other => Expression::from(hcl::to_value(other).map_err(ValueError::Json)?),
    })
}

type Attrs = Vec<(String, Expression)>;

/// A target's attributes as evaluated, what `target.NAME.ATTR` reads.
type Evaluated = hcl::Map<String, Value>;

/// Where a block and each of its attributes are, for errors.
#[derive(Default)]
struct Place {
    /// `FILE:LINE` of the block (`FILE: KIND "NAME"` in JSON, which has no lines).
    at: String,
    /// Each attribute's name, `FILE:LINE` and byte range in the text (HCL only).
    attrs: Vec<(String, String, Option<Range<usize>>)>,
}

impl Place {
    /// `FILE:LINE` of attribute `key`, else of the block.
    fn attr(&self, key: &str) -> &str {
        self.attrs.iter().find(|(k, _, _)| k == key).map_or(&self.at, |(_, at, _)| at)
    }

    fn span(&self, key: &str) -> Option<Range<usize>> {
        self.attrs.iter().find(|(k, _, _)| k == key).and_then(|(_, _, span)| span.clone())
    }
}

/// The blocks of one file, by kind: (name, attributes, where for errors).
#[derive(Default)]
struct Blocks {
    functions: Vec<super::userfunc::UserFunc>,
    /// `validation` blocks of variables: (variable, condition, message, where).
    validations: Vec<(String, Expression, Option<Expression>, String)>,
    variables: Vec<(String, Attrs, Place)>,
    targets: Vec<(String, Attrs, Place)>,
    groups: Vec<(String, Attrs, Place)>,
    /// The HCL text, to point errors at the line of a call.
    source: Option<Source>,
}

impl Blocks {
    fn evaluate(mut self, env: &Env) -> Result<Definition, BakeError> {
        let _functions = super::userfunc::install(std::mem::take(&mut self.functions))
            .map_err(|error| BakeError::Invalid { location: "function".into(), message: error.to_string() })?;
        let mut ctx = context();
        let mut definition = Definition::default();
        let values = self.variables(env)?;
        super::userfunc::set_variables(values.iter().map(|(n, v, _, _)| (n.clone(), v.clone())).collect());
        for (name, value, description, ty) in values {
            definition.variables.push(Variable {
                name: name.clone(),
                kind: ty.as_ref().map(hcl_vars::constraint_name),
                value: hcl_vars::listed(&value, ty.as_ref()),
                description,
            });
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
        for (name, attrs, place) in &self.groups {
            let at = &place.at;
            let mut members = Vec::new();
            for (key, expr) in attrs {
                let value = eval(expr, &ctx, place.attr(key), &format!("group {name:?}: {key}"))?;
                match key.as_str() {
                    "targets" => {
                        members =
                            string_list(&value).map_err(|e| bad_value(at, format!("group {name:?}: targets"), e))?
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
        let mut pending: Vec<&(String, Attrs, Place)> = self.targets.iter().collect();
        while !pending.is_empty() {
            ctx.declare_var("target", Value::Object(evaluated.clone()));
            let mut retry = Vec::new();
            let mut first_error = None;
            for block in &pending {
                match target_block(block, &ctx, &mut definition, self.source.as_ref()) {
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
    fn variables(&self, env: &Env) -> Result<Vec<ValuedVariable>, BakeError> {
        let mut ctx = context();
        let mut done: BTreeMap<String, (Value, Option<Type>)> = BTreeMap::new();
        let mut last_error = None;
        for _ in 0..=self.variables.len() {
            last_error = None;
            for (name, attrs, place) in &self.variables {
                let at = &place.at;
                if done.contains_key(name) {
                    continue;
                }
                let ty = hcl_vars::declared(attrs.iter().find(|(k, _)| k == "type").map(|(_, e)| e))
                    .map_err(|e| bad_variable(place.attr("type"), format!("variable {name:?}"), e))?;
                let default = match attrs.iter().find(|(k, _)| k == "default") {
                    Some((_, expr)) => match super::hcl_stdlib::lazy::evaluate(expr, &ctx) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            last_error = Some(invalid(place.attr("default"), format!("variable {name:?}: {e}")));
                            continue;
                        }
                    },
                    None => None,
                };
                let had_default = default.is_some();
                let value = hcl_vars::initial(name, default, ty.as_ref())
                    .map_err(|e| bad_variable(place.attr("default"), format!("variable {name:?}"), e))?;
                let declared = |key: &str| self.variables.iter().any(|(n, _, _)| n == key);
                let value = hcl_vars::overridden(
                    name,
                    value,
                    had_default,
                    ty.as_ref(),
                    &|key| env.get(key).cloned(),
                    &declared,
                )
                .map_err(|e| bad_variable(at, format!("variable {name:?} from --var or the environment"), e))?;
                // Variables may use each other, so forty that each double
                // the last would need terabytes: refused at the first one
                // past the bound, before the next doubles it again.
                if value_size(&value) > MAX_VALUE_BYTES {
                    return Err(invalid(
                        place.attr("default"),
                        format!("variable {name:?}: its value is larger than {} MiB", MAX_VALUE_BYTES >> 20),
                    ));
                }
                ctx.declare_var(name.clone(), value.clone());
                done.insert(name.clone(), (value, ty));
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
                let (value, ty) = done[name].clone();
                (name.clone(), value, description, ty)
            })
            .collect())
    }
}

/// A variable once valued: its name, value, description and declared type.
type ValuedVariable = (String, Value, Option<String>, Option<Type>);

/// The largest value a variable may hold: the bound the Dockerfile compiler
/// puts on one expansion (see the README's limits).
const MAX_VALUE_BYTES: usize = 16 << 20;

/// About how many bytes `value` holds (its strings and keys), counted
/// without recursion.
fn value_size(value: &Value) -> usize {
    let mut total = 0usize;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(s) => total = total.saturating_add(s.len()),
            Value::Array(items) => pending.extend(items.iter()),
            Value::Object(map) => {
                for (key, item) in map {
                    total = total.saturating_add(key.len());
                    pending.push(item);
                }
            }
            _ => total = total.saturating_add(8),
        }
    }
    total
}

/// The most targets one bake definition may hold, matrix combinations
/// included (see the README's limits). buildx has no bound: a 1000×1000
/// matrix took it tens of gigabytes; real projects stay in the hundreds.
pub(crate) const MAX_TARGETS: usize = 100_000;

/// One `target` block: one target, or one per matrix combination. Returns
/// each target's evaluated attributes, for `target.NAME.ATTR` references.
fn target_block(
    (name, attrs, place): &(String, Attrs, Place),
    ctx: &Context,
    definition: &mut Definition,
    source: Option<&Source>,
) -> Result<Vec<(String, Evaluated)>, BakeError> {
    let at = &place.at;
    let Some((_, expr)) = attrs.iter().find(|(k, _)| k == "matrix") else {
        let (target, values) = target(name, attrs, ctx, place, source)?;
        definition.add_target(name.clone(), target);
        return Ok(vec![(name.clone(), values)]);
    };
    let matrix = eval(expr, ctx, place.attr("matrix"), &format!("target {name:?}: matrix"))?;
    let matrix = Matrix::new(&matrix).map_err(|e| bad_value(at, format!("target {name:?}: matrix"), e))?;
    // Counted before a single combination is made, so a matrix of a
    // billion is refused at once rather than by the OOM killer.
    let room = MAX_TARGETS.saturating_sub(definition.targets.len());
    if matrix.len() > room {
        let size = matrix.lens.iter().map(usize::to_string).collect::<Vec<_>>().join("×");
        let total = matrix.lens.iter().try_fold(1u64, |n, &l| n.checked_mul(l as u64));
        let total = total.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
        let limit = if matrix.len() <= MAX_TARGETS {
            format!("the limit is {MAX_TARGETS} targets in all, with {} defined before it", definition.targets.len())
        } else {
            format!("the limit is {MAX_TARGETS}")
        };
        return Err(invalid(
            place.attr("matrix"),
            format!("target {name:?}: matrix of {size} expands to {total} targets; {limit}"),
        ));
    }
    let name_expr = attrs
        .iter()
        .find(|(k, _)| k == "name")
        .ok_or_else(|| invalid(at, format!("target {name:?}: a matrix target needs a name attribute")))?;
    // One copy of the context for the whole matrix (hcl-rs has no child
    // scope), its matrix variables replaced for each combination.
    let mut ctx = ctx.clone();
    let mut done = Vec::with_capacity(matrix.len());
    let mut combination = matrix.first();
    while let Some(indices) = combination {
        for (key, value) in matrix.values(&indices) {
            ctx.declare_var(key.clone(), value.clone());
        }
        let new_name = eval(&name_expr.1, &ctx, place.attr("name"), &format!("target {name:?}: name"))?;
        let new_name = display(&new_name).unwrap_or_default();
        done.push((new_name.clone(), target(&new_name, attrs, &ctx, place, source)?));
        combination = matrix.next(indices);
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

fn target(
    name: &str,
    attrs: &Attrs,
    ctx: &Context,
    place: &Place,
    source: Option<&Source>,
) -> Result<(Target, Evaluated), BakeError> {
    let mut values = hcl::Map::new();
    let mut target = Target::default();
    for (key, expr) in attrs {
        if key == "matrix" || key == "name" {
            continue;
        }
        let what = format!("target {name:?}: {key}");
        let at = place.attr(key);
        let value = eval(expr, ctx, at, &what).map_err(|e| at_undefined_function(e, source, place.span(key)))?;
        values.insert(key.clone(), value.clone());
        if key == "inherits" {
            target.inherits = string_list(&value).map_err(|e| bad_value(at, what, e))?;
            continue;
        }
        apply(&mut target, key, &value).map_err(|e| bad_value(at, what, e))?;
    }
    Ok((target, values))
}

/// Sets attribute `key` from an evaluated value: lists item by item, maps
/// key by key, null leaves it unset.
fn apply(target: &mut Target, key: &str, value: &Value) -> Result<(), ValueError> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => {
            // An empty list is still "set" (it clears an inherited one).
            target.set_empty_list(key)?;
            for item in items {
                // Objects (`{ type = "sbom" }`) are buildx's other form of a CSV spec.
                let item = display(item).or_else(|| object_spec(item)).ok_or(ValueError::NotStringList)?;
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
        other => Ok(target.set(key, None, &display(other).unwrap_or_default(), false)?),
    }
}

/// Why an evaluated value cannot be used where it stands.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ValueError {
    #[error("expected a list of strings")]
    NotStringList,
    #[error("expected an object of lists")]
    MatrixNotObject,
    #[error("{0}: expected a list")]
    MatrixNotList(String),
    /// A JSON string that is not a valid template.
    #[error("{text:?}: {error}")]
    Template { text: String, error: hcl::Error },
    /// A JSON value HCL has no value for.
    #[error("{0}")]
    Json(hcl::Error),
    #[error(transparent)]
    Attribute(#[from] AttributeError),
}

/// A matrix's variables and their lists, walked combination by combination
/// (the last variable changing fastest, as buildx orders them) without
/// making them all first.
struct Matrix<'a> {
    keys: Vec<&'a String>,
    lists: Vec<&'a [Value]>,
    lens: Vec<usize>,
}

impl<'a> Matrix<'a> {
    fn new(matrix: &'a Value) -> Result<Matrix<'a>, ValueError> {
        let Value::Object(map) = matrix else { return Err(ValueError::MatrixNotObject) };
        let mut out = Matrix { keys: Vec::new(), lists: Vec::new(), lens: Vec::new() };
        for (key, values) in map {
            let Value::Array(values) = values else { return Err(ValueError::MatrixNotList(key.clone())) };
            out.keys.push(key);
            out.lists.push(values);
            out.lens.push(values.len());
        }
        Ok(out)
    }

    /// How many combinations, saturating (`usize::MAX` stands for "too many").
    fn len(&self) -> usize {
        self.lens.iter().try_fold(1usize, |n, &l| n.checked_mul(l)).unwrap_or(usize::MAX)
    }

    fn first(&self) -> Option<Vec<usize>> {
        (self.len() > 0).then(|| vec![0; self.keys.len()])
    }

    fn next(&self, mut indices: Vec<usize>) -> Option<Vec<usize>> {
        for i in (0..indices.len()).rev() {
            indices[i] += 1;
            if indices[i] < self.lens[i] {
                return Some(indices);
            }
            indices[i] = 0;
        }
        None
    }

    fn values<'s>(&'s self, indices: &'s [usize]) -> impl Iterator<Item = (&'a String, &'a Value)> + 's {
        indices.iter().enumerate().map(|(i, &at)| (self.keys[i], &self.lists[i][at]))
    }
}

/// Evaluates through [`super::hcl_stdlib::lazy`], which does what hcl-rs
/// cannot (`try`, `can`, `convert`, `for` in go-cty's order).
fn eval(expr: &Expression, ctx: &Context, at: &str, what: &str) -> Result<Value, BakeError> {
    super::hcl_stdlib::lazy::evaluate(expr, ctx).map_err(|e| invalid(at, format!("{what}: {e}")))
}

fn invalid(at: &str, message: String) -> BakeError {
    BakeError::Invalid { location: at.to_string(), message }
}

fn bad_value(at: &str, what: String, reason: ValueError) -> BakeError {
    BakeError::Value { location: at.to_string(), what, reason: Box::new(reason.into()) }
}

fn bad_variable(at: &str, what: String, reason: hcl_vars::VariableError) -> BakeError {
    BakeError::Value { location: at.to_string(), what, reason: Box::new(reason.into()) }
}

/// A scalar as a string (numbers and booleans as HCL prints them).
fn display(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(super::hcl_stdlib::number_text(n)),
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

fn string_list(value: &Value) -> Result<Vec<String>, ValueError> {
    match value {
        Value::Array(items) => items.iter().map(|v| display(v).ok_or(ValueError::NotStringList)).collect(),
        _ => Err(ValueError::NotStringList),
    }
}

/// An undefined function's error points at the line of the attribute that
/// calls it (an attribute may span many lines); only the attribute's own
/// text is searched.
fn at_undefined_function(error: BakeError, source: Option<&Source>, span: Option<Range<usize>>) -> BakeError {
    let BakeError::Invalid { location, message } = error else { return error };
    let name = message.split("undefined function `").nth(1).and_then(|rest| rest.split('`').next());
    let found = (|| {
        let (text, span) = (source?, span?);
        let (file, _) = location.rsplit_once(':')?;
        let offset = text.text.get(span.clone())?.find(&format!("{}(", name?))?;
        Some(format!("{file}:{}", text.lines.line(span.start + offset)))
    })();
    BakeError::Invalid { location: found.unwrap_or(location), message }
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

/// The evaluation context: buildx's whole function library
/// ([`super::hcl_stdlib`]) and the file's user functions.
pub(crate) fn context() -> Context<'static> {
    let mut ctx = Context::new();
    super::hcl_stdlib::declare(&mut ctx);
    super::userfunc::declare(&mut ctx);
    ctx
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
    fn self_doubling_variables_are_refused_at_their_line() {
        let mut text = String::from("variable \"A0\" { default = \"xx\" }\n");
        for i in 1..=40 {
            text.push_str(&format!("variable \"A{i}\" {{ default = \"${{A{}}}${{A{}}}\" }}\n", i - 1, i - 1));
        }
        text.push_str("target \"default\" {\n  args = { X = A40 }\n}\n");
        let err = load_hcl("docker-bake.hcl", &text, &Env::new()).expect_err("refused").to_string();
        assert!(err.contains("variable \"A24\": its value is larger than 16 MiB"), "{err}");
        assert!(err.contains("docker-bake.hcl:25"), "{err}");
    }

    /// Issue 20: a 1000×1000×1000 matrix took tens of gigabytes; it is now
    /// refused, at the matrix's line, before one combination is made.
    #[test]
    fn a_matrix_past_the_bound_is_refused_at_its_line() {
        let list = |p: &str| (0..1000).map(|i| format!("\"{p}{i}\"")).collect::<Vec<_>>().join(",");
        let text = format!(
            "target \"ok\" {{}}\n\ntarget \"big\" {{\n  name = \"b-${{x}}-${{y}}-${{z}}\"\n  matrix = {{\n    x = [{}]\n    y = [{}]\n    z = [{}]\n  }}\n}}\n",
            list("x"),
            list("y"),
            list("z")
        );
        let err = load_hcl("docker-bake.hcl", &text, &Env::new()).unwrap_err().to_string();
        assert_eq!(
            err,
            "docker-bake.hcl:5: target \"big\": matrix of 1000×1000×1000 expands to 1000000000 targets; the limit is 100000"
        );
        // The bound counts every target of the file: a matrix of exactly the
        // limit after one other target is refused (counted, not evaluated).
        let matrix = |name: &str, n: usize| {
            format!(
                "target \"{name}\" {{\n  name = \"{name}-${{a}}-${{b}}\"\n  matrix = {{ a = [{}], b = [{}] }}\n}}\n",
                (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(","),
                (0..10).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            )
        };
        let text = format!("target \"one\" {{}}\n{}", matrix("m", MAX_TARGETS / 10));
        let err = load_hcl("f.hcl", &text, &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("f.hcl:4: target \"m\": matrix of 10000×10 expands to 100000 targets"), "{err}");
        assert!(err.ends_with("the limit is 100000 targets in all, with 1 defined before it"), "{err}");
        // An empty list makes no targets, and overflowing products are named.
        let d =
            load_hcl("f.hcl", "target \"e\" {\n  name = \"e-${a}\"\n  matrix = { a = [], b = [1] }\n}\n", &Env::new())
                .unwrap();
        assert!(d.targets.is_empty());
        assert_eq!(d.group("e").unwrap(), [] as [String; 0]);
    }

    #[test]
    fn matrix_combinations_come_in_buildx_order() {
        let text = "target \"m\" {\n  name = \"m-${a}-${b}\"\n  matrix = { a = [\"1\", \"2\"], b = [\"x\", \"y\", \"z\"] }\n}\n";
        let d = load_hcl("f.hcl", text, &Env::new()).unwrap();
        assert_eq!(d.group("m").unwrap(), ["m-1-x", "m-1-y", "m-1-z", "m-2-x", "m-2-y", "m-2-z"]);
    }

    /// Thousands of blocks: each error still names its own block's and
    /// attribute's line (found from spans, not by searching the text).
    #[test]
    fn lines_come_from_spans_in_large_files() {
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(&format!(
                "# target \"t{i}\" in a comment\ntarget \"t{i}\" {{\n  context = \".\"\n  tags = [\"r/t{i}\"]\n}}\n"
            ));
        }
        text.push_str("target \"t7\" {\n\n  args = { A = nope }\n}\n");
        let err = load_hcl("big.hcl", &text, &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("big.hcl:15003: target \"t7\": args"), "{err}");
        let text = "target \"a\" {\n  tags = [\n    \"x\",\n    upper(nofunc(\"y\")),\n  ]\n}\n";
        let err = load_hcl("f.hcl", text, &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("f.hcl:4: "), "{err}");
    }

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
        assert!(err.starts_with("r.hcl:2: ") && err.contains("tags"), "{err}");
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

    /// A function that calls itself without end overflowed the stack and
    /// aborted the process; calls now nest at most 32 deep.
    #[test]
    fn endless_recursion_in_user_functions_is_an_error() {
        let text = "function \"f\" {\n  params = [x]\n  result = f(x)\n}\ntarget \"t\" {\n  tags = [f(1)]\n}\n";
        let err = load_hcl("r.hcl", text, &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("r.hcl:6: "), "{err}");
        assert!(err.contains("call each other more than 32 deep"), "{err}");
        // Recursion that ends within the bound works.
        let text = "function \"down\" {\n  params = [n]\n  result = n > 0 ? down(n - 1) : \"done\"\n}\ntarget \"t\" {\n  tags = [down(20)]\n}\n";
        let d = load_hcl("r.hcl", text, &Env::new()).unwrap();
        assert_eq!(d.target("t").unwrap().tags.as_deref().unwrap(), ["done"]);
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
        // Quotes inside `${...}` are the expression's own, as buildx reads them.
        let text = r#"{"target": {"app": {"tags": ["${upper(\"x\")}:${try(nope, \"d\")}"]}}}"#;
        let d = load_json("docker-bake.json", text, &Env::new()).unwrap();
        assert_eq!(d.target("app").unwrap().tags.as_deref().unwrap(), ["X:d"]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = load_hcl("b.hcl", "target \"a\" {\n  tags = [\n}\n", &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("b.hcl:"), "{err}");
        let err = load_hcl("b.hcl", "\n\ntarget \"a\" {\n  tags = [NOPE]\n}\n", &Env::new()).unwrap_err().to_string();
        assert!(err.starts_with("b.hcl:4: ") && err.contains("NOPE"), "{err}");
        let err = load_hcl("b.hcl", "target \"a\" {\n  bogus = 1\n}\n", &Env::new()).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
