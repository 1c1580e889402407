//! The evaluator path fbuild controls: `try`, `can`, `convert` and `for`.
//!
//! hcl-rs calls a function with its arguments already evaluated, and an
//! argument that fails fails the whole expression; `try(a, b)` and `can(a)`
//! must instead see the failure, and `convert(v, list(string))` takes a type
//! expression that is no value at all. So [`evaluate`] first walks the
//! expression and replaces each such call by its result (evaluating the
//! arguments itself, in the same context), then hands the rest to hcl-rs.
//! Conditionals on that path evaluate only the branch taken, as hcl-rs
//! does. `for` expressions are evaluated here too (the variables they bind
//! are seen by the calls inside them), iterating an object in go-cty's
//! order: sorted keys, where hcl-rs keeps the order of the source.
//! Templates are rendered here too (directives and strip markers as hcl-rs
//! does them, values written as go-cty writes them). The functions declared by [`try_`], [`can`] and
//! [`convert`] only say, should hcl-rs ever reach one, that this path was
//! missed.

use hcl::eval::{Context, Evaluate, FuncDef};
use hcl::expr::{Conditional, ForExpr, FuncCall, Operation, TraversalOperator};
use hcl::template::{Directive, Element, Strip, Template};
use hcl::{Expression, ObjectKey, TemplateExpr, Value};

use super::{fixed, sorted_object, to_bool, to_number, to_string, type_name, variadic, Result};

/// Evaluates `expr` in `ctx` as buildx would: hcl-rs's evaluation, with the
/// calls it cannot make done here.
pub(crate) fn evaluate(expr: &Expression, ctx: &Context) -> Result<Value> {
    if !needs_us(expr) {
        return expr.evaluate(ctx).map_err(|e| e.to_string());
    }
    let resolved = resolve(expr, ctx)?;
    resolved.evaluate(ctx).map_err(|e| e.to_string())
}

fn is_lazy(call: &FuncCall) -> bool {
    call.name.namespace.is_empty() && matches!(call.name.name.as_str(), "try" | "can" | "convert")
}

/// Whether the expression has a call or a `for` that hcl-rs must not see.
fn needs_us(expr: &Expression) -> bool {
    match expr {
        Expression::FuncCall(call) => is_lazy(call) || call.args.iter().any(needs_us),
        Expression::ForExpr(_) => true,
        Expression::Array(items) => items.iter().any(needs_us),
        Expression::Object(object) => object.iter().any(|(k, v)| key_needs_us(k) || needs_us(v)),
        Expression::Parenthesis(inner) => needs_us(inner),
        Expression::Conditional(c) => needs_us(&c.cond_expr) || needs_us(&c.true_expr) || needs_us(&c.false_expr),
        Expression::Operation(op) => match op.as_ref() {
            Operation::Unary(u) => needs_us(&u.expr),
            Operation::Binary(b) => needs_us(&b.lhs_expr) || needs_us(&b.rhs_expr),
        },
        Expression::Traversal(t) => {
            needs_us(&t.expr)
                || t.operators.iter().any(|op| matches!(op, TraversalOperator::Index(index) if needs_us(index)))
        }
        Expression::TemplateExpr(template) => Template::from_expr(template).is_ok_and(|t| template_needs_us(&t)),
        _ => false,
    }
}

fn key_needs_us(key: &ObjectKey) -> bool {
    matches!(key, ObjectKey::Expression(e) if needs_us(e))
}

/// Every template that is more than text: hcl-rs writes an interpolated
/// number in Rust's notation (`1e-7`, where go-cty writes `0.0000001`) and
/// a `%{for}` walks an object in source order, so templates are rendered
/// here.
fn template_needs_us(template: &Template) -> bool {
    template.elements().iter().any(|element| !matches!(element, Element::Literal(_)))
}

/// The expression with every `try`, `can`, `convert` and `for` replaced by
/// its value.
fn resolve(expr: &Expression, ctx: &Context) -> Result<Expression> {
    if !needs_us(expr) {
        return Ok(expr.clone());
    }
    Ok(match expr {
        Expression::FuncCall(call) if is_lazy(call) => Expression::from(call_lazy(call, ctx)?),
        Expression::FuncCall(call) => {
            let mut call = call.as_ref().clone();
            call.args = call.args.iter().map(|a| resolve(a, ctx)).collect::<Result<_>>()?;
            Expression::FuncCall(Box::new(call))
        }
        Expression::ForExpr(for_expr) => Expression::from(evaluate_for(for_expr, ctx)?),
        Expression::Array(items) => Expression::Array(items.iter().map(|e| resolve(e, ctx)).collect::<Result<_>>()?),
        Expression::Object(object) => {
            let mut out = hcl::Object::new();
            for (key, value) in object {
                let key = match key {
                    ObjectKey::Expression(e) => ObjectKey::Expression(resolve(e, ctx)?),
                    other => other.clone(),
                };
                out.insert(key, resolve(value, ctx)?);
            }
            Expression::Object(out)
        }
        Expression::Parenthesis(inner) => Expression::Parenthesis(Box::new(resolve(inner, ctx)?)),
        Expression::Conditional(c) => resolve_conditional(c, ctx)?,
        Expression::Operation(op) => {
            let mut op = op.as_ref().clone();
            match &mut op {
                Operation::Unary(u) => u.expr = resolve(&u.expr, ctx)?,
                Operation::Binary(b) => {
                    b.lhs_expr = resolve(&b.lhs_expr, ctx)?;
                    b.rhs_expr = resolve(&b.rhs_expr, ctx)?;
                }
            }
            Expression::Operation(Box::new(op))
        }
        Expression::Traversal(t) => {
            let mut t = t.as_ref().clone();
            t.expr = resolve(&t.expr, ctx)?;
            for op in &mut t.operators {
                if let TraversalOperator::Index(index) = op {
                    *index = resolve(index, ctx)?;
                }
            }
            Expression::Traversal(Box::new(t))
        }
        Expression::TemplateExpr(template) => Expression::from(evaluate_template(template, ctx)?),
        other => other.clone(),
    })
}

/// Only the branch taken is resolved (and so evaluated).
fn resolve_conditional(c: &Conditional, ctx: &Context) -> Result<Expression> {
    match evaluate(&c.cond_expr, ctx)? {
        Value::Bool(true) => resolve(&c.true_expr, ctx),
        Value::Bool(false) => resolve(&c.false_expr, ctx),
        other => Err(format!("the condition of a conditional must be a bool, got `{other}`")),
    }
}

fn call_lazy(call: &FuncCall, ctx: &Context) -> Result<Value> {
    let name = call.name.name.as_str();
    let fail = |message: String| format!("error calling function `{name}`: {message}");
    match name {
        "try" => {
            if call.args.is_empty() {
                return Err(fail("at least one argument is required".into()));
            }
            let mut errors = Vec::new();
            for arg in &call.args {
                match evaluate(arg, ctx) {
                    Ok(value) => return Ok(value),
                    Err(e) => errors.push(e),
                }
            }
            Err(fail(format!("no expression succeeded: {}", errors.join("; "))))
        }
        "can" => match call.args.as_slice() {
            [arg] => Ok(Value::Bool(evaluate(arg, ctx).is_ok())),
            args => Err(fail(format!("expected 1 positional argument, got {}", args.len()))),
        },
        _ => match call.args.as_slice() {
            [value, ty] => {
                let ty = Type::parse(ty).map_err(fail)?;
                let value = evaluate(value, ctx)?;
                convert_value(value, &ty).map_err(fail)
            }
            args => Err(fail(format!("expected 2 positional arguments, got {}", args.len()))),
        },
    }
}

/// A `for` expression, with objects iterated in sorted key order.
fn evaluate_for(for_expr: &ForExpr, ctx: &Context) -> Result<Value> {
    let collection = evaluate(&for_expr.collection_expr, ctx)?;
    let entries: Vec<(Value, Value)> = match collection {
        Value::Array(items) => items.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect(),
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
        }
        other => return Err(format!("a for expression needs a list or an object, got `{other}`")),
    };
    let mut list = Vec::new();
    let mut object: Vec<(String, Value)> = Vec::new();
    // One copy of the context (hcl-rs offers no child scope), its loop
    // variables replaced on each pass.
    let mut scope = ctx.clone();
    for (key, value) in entries {
        if let Some(key_var) = &for_expr.key_var {
            scope.declare_var(key_var.clone(), key);
        }
        scope.declare_var(for_expr.value_var.clone(), value);
        if let Some(cond) = &for_expr.cond_expr {
            match evaluate(cond, &scope)? {
                Value::Bool(true) => {}
                Value::Bool(false) => continue,
                other => return Err(format!("a for expression's condition must be a bool, got `{other}`")),
            }
        }
        let value = evaluate(&for_expr.value_expr, &scope)?;
        match &for_expr.key_expr {
            None => list.push(value),
            Some(key_expr) => {
                let key = to_string(&evaluate(key_expr, &scope)?)
                    .map_err(|e| format!("a for expression's key must be a string: {e}"))?;
                let existing = object.iter_mut().find(|(k, _)| *k == key);
                match (existing, for_expr.grouping) {
                    (Some((_, Value::Array(group))), true) => group.push(value),
                    (None, true) => object.push((key, Value::Array(vec![value]))),
                    (Some(_), _) => {
                        return Err(format!("duplicate object key {key:?} in a for expression (use `...` to group)"))
                    }
                    (None, false) => object.push((key, value)),
                }
            }
        }
    }
    Ok(match for_expr.key_expr {
        None => Value::Array(list),
        Some(_) => sorted_object(object),
    })
}

/// A template that holds a lazy call: interpolations, `%{if}` and
/// `%{for}` evaluated here, with strip markers (`~`) applied as hcl-rs
/// applies them.
fn evaluate_template(template: &TemplateExpr, ctx: &Context) -> Result<Value> {
    let template = Template::from_expr(template).map_err(|e| e.to_string())?;
    if let [Element::Interpolation(interp)] = template.elements() {
        return evaluate(&interp.expr, ctx);
    }
    let mut out = String::new();
    render(&template, ctx, Strip::None, Strip::None, &mut out)?;
    Ok(Value::String(out))
}

/// Which sides of an element strip the literals next to it.
fn element_strip(element: &Element) -> Strip {
    match element {
        Element::Literal(_) => Strip::None,
        Element::Interpolation(interp) => interp.strip,
        Element::Directive(directive) => {
            let (start, end) = match directive.as_ref() {
                Directive::If(d) => (d.if_strip, d.endif_strip),
                Directive::For(d) => (d.for_strip, d.endfor_strip),
            };
            Strip::from((start.strip_start(), end.strip_end()))
        }
    }
}

/// A literal without the spaces, and one line break, that a `~` on the
/// element before (its end) or after (its start) takes away.
fn strip_literal(mut literal: &str, before: Strip, after: Strip) -> &str {
    let space = |c: char| c.is_whitespace() && c != '\r' && c != '\n';
    if before.strip_end() {
        literal = literal.trim_start_matches(space);
        literal = literal.strip_prefix("\r\n").or_else(|| literal.strip_prefix('\n')).unwrap_or(literal);
    }
    if after.strip_start() {
        literal = literal.trim_end_matches(space);
        literal = literal.strip_suffix("\r\n").or_else(|| literal.strip_suffix('\n')).unwrap_or(literal);
    }
    literal
}

fn render(template: &Template, ctx: &Context, before: Strip, after: Strip, out: &mut String) -> Result<()> {
    let elements = template.elements();
    for (i, element) in elements.iter().enumerate() {
        let prev = if i == 0 { before } else { element_strip(&elements[i - 1]) };
        let next = elements.get(i + 1).map_or(after, element_strip);
        match element {
            Element::Literal(text) => out.push_str(strip_literal(text, prev, next)),
            Element::Interpolation(interp) => {
                let value = evaluate(&interp.expr, ctx)?;
                out.push_str(&to_string(&value).map_err(|e| format!("cannot interpolate `{value}`: {e}"))?);
            }
            Element::Directive(directive) => match directive.as_ref() {
                Directive::If(d) => match evaluate(&d.cond_expr, ctx)? {
                    Value::Bool(true) => {
                        let end = if d.false_template.is_some() { d.else_strip } else { d.endif_strip };
                        render(&d.true_template, ctx, d.if_strip, end, out)?
                    }
                    Value::Bool(false) => {
                        if let Some(false_template) = &d.false_template {
                            render(false_template, ctx, d.else_strip, d.endif_strip, out)?
                        }
                    }
                    other => return Err(format!("an %{{if}} condition must be a bool, got `{other}`")),
                },
                Directive::For(d) => {
                    let entries: Vec<(Value, Value)> = match evaluate(&d.collection_expr, ctx)? {
                        Value::Array(items) => {
                            items.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect()
                        }
                        Value::Object(map) => {
                            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                            entries.sort_by(|a, b| a.0.cmp(&b.0));
                            entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
                        }
                        other => return Err(format!("%{{for}} needs a list or an object, got `{other}`")),
                    };
                    let mut scope = ctx.clone();
                    for (key, value) in entries {
                        if let Some(key_var) = &d.key_var {
                            scope.declare_var(key_var.clone(), key);
                        }
                        scope.declare_var(d.value_var.clone(), value);
                        render(&d.template, &scope, d.for_strip, d.endfor_strip, out)?;
                    }
                }
            },
        }
    }
    Ok(())
}

/// What hcl-rs calls if a lazy function reaches it (not on [`evaluate`]'s path).
fn unsupported(name: &'static str) -> String {
    format!("{name}() is evaluated by fbuild before hcl-rs; it cannot be used in this position")
}

pub(super) fn try_() -> FuncDef {
    variadic(0, |_| Err(unsupported("try")))
}

pub(super) fn can() -> FuncDef {
    fixed(1, |_| Err(unsupported("can")))
}

pub(super) fn convert() -> FuncDef {
    fixed(2, |_| Err(unsupported("convert")))
}

/// A type constraint, as HCL's `typeexpr` reads one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Type {
    Any,
    String,
    Number,
    Bool,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Tuple(Vec<Type>),
    Object(Vec<(String, Type)>),
}

impl Type {
    pub(crate) fn parse(expr: &Expression) -> std::result::Result<Type, String> {
        let bad = || format!("invalid type constraint `{expr}`");
        match expr {
            Expression::Variable(name) => match name.as_str() {
                "any" => Ok(Type::Any),
                "string" => Ok(Type::String),
                "number" => Ok(Type::Number),
                "bool" => Ok(Type::Bool),
                "list" | "set" | "map" | "tuple" | "object" => Err(format!(
                    "the type constraint `{}` needs its element type, e.g. {}(string)",
                    name.as_str(),
                    name.as_str()
                )),
                _ => Err(bad()),
            },
            Expression::FuncCall(call) if call.args.len() == 1 => {
                let arg = &call.args[0];
                match call.name.name.as_str() {
                    "list" => Ok(Type::List(Box::new(Type::parse(arg)?))),
                    "set" => Ok(Type::Set(Box::new(Type::parse(arg)?))),
                    "map" => Ok(Type::Map(Box::new(Type::parse(arg)?))),
                    "tuple" => match arg {
                        Expression::Array(items) => {
                            Ok(Type::Tuple(items.iter().map(Type::parse).collect::<std::result::Result<_, _>>()?))
                        }
                        _ => Err(bad()),
                    },
                    "object" => match arg {
                        Expression::Object(object) => {
                            let mut attrs = Vec::new();
                            for (key, value) in object {
                                let key = match key {
                                    ObjectKey::Identifier(id) => id.to_string(),
                                    ObjectKey::Expression(Expression::String(s)) => s.clone(),
                                    _ => return Err(bad()),
                                };
                                attrs.push((key, Type::parse(value)?));
                            }
                            attrs.sort_by(|a, b| a.0.cmp(&b.0));
                            Ok(Type::Object(attrs))
                        }
                        _ => Err(bad()),
                    },
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }
}

/// go-cty's conversion of `value` to `ty`; null stays null.
pub(crate) fn convert_value(value: Value, ty: &Type) -> std::result::Result<Value, String> {
    if value.is_null() {
        return Ok(value);
    }
    match ty {
        Type::Any => Ok(value),
        Type::String => match value {
            Value::Array(_) | Value::Object(_) => Err(format!("string required, got {}", type_name(&value))),
            other => to_string(&other).map(Value::from),
        },
        Type::Number => match value {
            Value::Number(_) | Value::String(_) => to_number(&value).map(Value::Number),
            other => Err(format!("number required, got {}", type_name(&other))),
        },
        Type::Bool => match value {
            Value::Bool(_) | Value::String(_) => to_bool(&value).map(Value::Bool),
            other => Err(format!("bool required, got {}", type_name(&other))),
        },
        Type::List(element) | Type::Set(element) => {
            let Value::Array(items) = value else { return Err(format!("list required, got {}", type_name(&value))) };
            let items =
                items.into_iter().map(|v| convert_value(v, element)).collect::<std::result::Result<Vec<_>, _>>()?;
            let items = if **element == Type::Any { super::unify_strict(items)? } else { items };
            if matches!(ty, Type::Set(_)) {
                let as_list = Value::Array(items);
                return super::collections::as_set(as_list);
            }
            Ok(Value::Array(items))
        }
        Type::Map(element) => {
            let Value::Object(map) = value else { return Err(format!("map required, got {}", type_name(&value))) };
            let entries = map
                .into_iter()
                .map(|(k, v)| convert_value(v, element).map(|v| (k, v)))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(sorted_object(entries))
        }
        Type::Tuple(types) => {
            let Value::Array(items) = value else { return Err(format!("tuple required, got {}", type_name(&value))) };
            if items.len() != types.len() {
                return Err(format!("tuple required with {} elements, got {}", types.len(), items.len()));
            }
            Ok(Value::Array(
                items
                    .into_iter()
                    .zip(types)
                    .map(|(v, t)| convert_value(v, t))
                    .collect::<std::result::Result<_, _>>()?,
            ))
        }
        Type::Object(attrs) => {
            let Value::Object(map) = value else { return Err(format!("object required, got {}", type_name(&value))) };
            let mut out = Vec::new();
            for (name, t) in attrs {
                let v = map.get(name).cloned().ok_or_else(|| format!("attribute {name:?} is required"))?;
                out.push((name.clone(), convert_value(v, t)?));
            }
            Ok(sorted_object(out))
        }
    }
}
