//! buildx's HCL function library (`bake/hclparser/stdlib.go` in buildx
//! v0.38.2: go-cty's stdlib, go-cty-funcs, HCL's `try`/`can`/`convert` and
//! buildx's own), one home per function, grouped by what they work on.
//! [`declare`] puts all of them in an hcl-rs evaluation context; `try`, `can`
//! and `convert` need their arguments unevaluated, which hcl-rs's functions
//! cannot have, so [`lazy`] evaluates expressions that use them.
//!
//! Values: hcl-rs has one list type and one object type where go-cty has
//! lists, tuples, sets, maps and objects. Functions therefore convert their
//! arguments as go-cty does (a number or a bool where a string is wanted
//! becomes its text, a numeric string where a number is wanted its number)
//! and return objects with their keys sorted, the order go-cty iterates in.
//! Numbers are hcl-rs's (64-bit integers or floats), where go-cty's are
//! 512-bit floats: results agree except in the digits beyond a float's
//! precision (`divide(1, 3)`, `0.1 + 0.2`), integers beyond 64 bits, and
//! `-0`. Since every `{...}` of a bake file is an object to go-cty (maps
//! come only from typed variables, which fbuild does not read), functions
//! that go-cty gives maps but not objects (`length`, `index`, `hasindex`)
//! refuse them here too, so a file fbuild accepts is one buildx accepts.
//!
//! tests/bake/functions holds a case for every function, with buildx's
//! output beside it (scripts/bake_reference.sh writes it).

mod collections;
mod crypto;
mod encoding;
pub(crate) use encoding::{from_json, json_text};
pub(crate) mod lazy;
mod network;
mod numbers;
mod semver;
mod strings;
mod time;

use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};
use hcl::{Number, Value};

/// Makes one function's definition.
type Definer = fn() -> FuncDef;

/// The name of every function buildx has, and its definition here.
const FUNCTIONS: &[(&str, Definer)] = &[
    ("absolute", numbers::absolute),
    ("add", numbers::add),
    ("and", numbers::and),
    ("base64decode", encoding::base64decode),
    ("base64encode", encoding::base64encode),
    ("basename", strings::basename),
    ("bcrypt", crypto::bcrypt),
    ("byteslen", encoding::byteslen),
    ("bytesslice", encoding::bytesslice),
    ("can", lazy::can),
    ("ceil", numbers::ceil),
    ("chomp", strings::chomp),
    ("chunklist", collections::chunklist),
    ("cidrhost", network::cidrhost),
    ("cidrnetmask", network::cidrnetmask),
    ("cidrsubnet", network::cidrsubnet),
    ("cidrsubnets", network::cidrsubnets),
    ("coalesce", collections::coalesce),
    ("coalescelist", collections::coalescelist),
    ("compact", collections::compact),
    ("concat", collections::concat),
    ("contains", collections::contains),
    ("convert", lazy::convert),
    ("csvdecode", encoding::csvdecode),
    ("dirname", strings::dirname),
    ("distinct", collections::distinct),
    ("divide", numbers::divide),
    ("element", collections::element),
    ("equal", numbers::equal),
    ("flatten", collections::flatten),
    ("floor", numbers::floor),
    ("format", strings::format),
    ("formatdate", time::formatdate),
    ("formattimestamp", time::formattimestamp),
    ("formatlist", strings::formatlist),
    ("greaterthan", numbers::greaterthan),
    ("greaterthanorequalto", numbers::greaterthanorequalto),
    ("hasindex", collections::hasindex),
    ("homedir", strings::homedir),
    ("indent", strings::indent),
    ("index", collections::index),
    ("indexof", collections::indexof),
    ("int", numbers::int),
    ("join", strings::join),
    ("jsondecode", encoding::jsondecode),
    ("jsonencode", encoding::jsonencode),
    ("keys", collections::keys),
    ("length", collections::length),
    ("lessthan", numbers::lessthan),
    ("lessthanorequalto", numbers::lessthanorequalto),
    ("log", numbers::log),
    ("lookup", collections::lookup),
    ("lower", strings::lower),
    ("max", numbers::max),
    ("md5", crypto::md5),
    ("merge", collections::merge),
    ("min", numbers::min),
    ("modulo", numbers::modulo),
    ("multiply", numbers::multiply),
    ("negate", numbers::negate),
    ("not", numbers::not),
    ("notequal", numbers::notequal),
    ("or", numbers::or),
    ("parseint", numbers::parseint),
    ("pow", numbers::pow),
    ("range", collections::range),
    ("regex_replace", strings::regex_replace),
    ("regex", strings::regex),
    ("regexall", strings::regexall),
    ("replace", strings::replace),
    ("reverse", strings::reverse),
    ("reverselist", collections::reverselist),
    ("rsadecrypt", crypto::rsadecrypt),
    ("sanitize", strings::sanitize),
    ("semvercmp", semver::semvercmp),
    ("sethaselement", collections::sethaselement),
    ("setintersection", collections::setintersection),
    ("setproduct", collections::setproduct),
    ("setsubtract", collections::setsubtract),
    ("setsymmetricdifference", collections::setsymmetricdifference),
    ("setunion", collections::setunion),
    ("sha1", crypto::sha1),
    ("sha256", crypto::sha256),
    ("sha512", crypto::sha512),
    ("signum", numbers::signum),
    ("slice", collections::slice),
    ("sort", collections::sort),
    ("split", strings::split),
    ("strlen", strings::strlen),
    ("substr", strings::substr),
    ("subtract", numbers::subtract),
    ("timeadd", time::timeadd),
    ("timestamp", time::timestamp),
    ("title", strings::title),
    ("trim", strings::trim),
    ("trimprefix", strings::trimprefix),
    ("trimspace", strings::trimspace),
    ("trimsuffix", strings::trimsuffix),
    ("try", lazy::try_),
    ("unixtimestampparse", time::unixtimestampparse),
    ("upper", strings::upper),
    ("urlencode", encoding::urlencode),
    ("uuidv4", crypto::uuidv4),
    ("uuidv5", crypto::uuidv5),
    ("values", collections::values),
    ("zipmap", collections::zipmap),
];

/// Declares every function of buildx's library in `ctx`.
pub(crate) fn declare(ctx: &mut Context<'_>) {
    for (name, def) in FUNCTIONS {
        ctx.declare_func(*name, def());
    }
}

/// The names of the functions, for tests and error hints.
#[cfg(test)]
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|(name, _)| *name)
}

/// A function of `n` arguments of any type: each function converts its
/// arguments itself, as go-cty does, and hcl-rs checks the count (its
/// message names the function).
fn fixed(n: usize, func: hcl::eval::Func) -> FuncDef {
    FuncDef::new(func, vec![ParamType::Any; n])
}

/// A function of `n` arguments followed by any number more.
fn variadic(n: usize, func: hcl::eval::Func) -> FuncDef {
    FuncDef::builder().params(vec![ParamType::Any; n]).variadic_param(ParamType::Any).build(func)
}

type Result<T> = std::result::Result<T, String>;

/// Argument `i` as go-cty converts it to a string.
fn string(args: &FuncArgs, i: usize) -> Result<String> {
    to_string(&args[i]).map_err(|e| arg_error(args, i, &e))
}

fn number(args: &FuncArgs, i: usize) -> Result<Number> {
    to_number(&args[i]).map_err(|e| arg_error(args, i, &e))
}

fn float(args: &FuncArgs, i: usize) -> Result<f64> {
    number(args, i).map(|n| n.as_f64().unwrap_or(f64::NAN))
}

/// A whole number that fits an `i64` (go-cty's conversion to a Go `int`).
fn integer(args: &FuncArgs, i: usize) -> Result<i64> {
    to_integer(&args[i]).map_err(|e| arg_error(args, i, &e))
}

fn boolean(args: &FuncArgs, i: usize) -> Result<bool> {
    to_bool(&args[i]).map_err(|e| arg_error(args, i, &e))
}

fn list(args: &FuncArgs, i: usize) -> Result<Vec<Value>> {
    match &args[i] {
        Value::Array(items) => Ok(items.clone()),
        Value::Null => Err(arg_error(args, i, "argument must not be null")),
        other => Err(arg_error(args, i, &format!("a list is required, got {}", type_name(other)))),
    }
}

fn object(args: &FuncArgs, i: usize) -> Result<hcl::Map<String, Value>> {
    match &args[i] {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Err(arg_error(args, i, "argument must not be null")),
        other => Err(arg_error(args, i, &format!("a map is required, got {}", type_name(other)))),
    }
}

/// Says which argument is wrong when the function has more than one.
fn arg_error(args: &FuncArgs, i: usize, message: &str) -> String {
    if args.len() > 1 {
        format!("argument {}: {message}", i + 1)
    } else {
        message.to_string()
    }
}

pub(crate) fn to_string(value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(number_text(n)),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err("argument must not be null".into()),
        other => Err(format!("a string is required, got {}", type_name(other))),
    }
}

fn to_number(value: &Value) -> Result<Number> {
    match value {
        Value::Number(n) => Ok(*n),
        Value::String(s) => parse_number(s).ok_or_else(|| format!("a number is required, got the string {s:?}")),
        Value::Null => Err("argument must not be null".into()),
        other => Err(format!("a number is required, got {}", type_name(other))),
    }
}

fn to_integer(value: &Value) -> Result<i64> {
    let n = to_number(value)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        Some(f) if f.fract() == 0.0 => Err(format!("value {} is too large for an integer", number_text(&n))),
        _ => Err(format!("a whole number is required, got {}", number_text(&n))),
    }
}

fn to_bool(value: &Value) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        Value::Null => Err("argument must not be null".into()),
        other => Err(format!("a bool is required, got {}", type_name(other))),
    }
}

/// A number as HCL reads one: integers stay exact, the rest are floats.
fn parse_number(text: &str) -> Option<Number> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Number::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(Number::from(u));
    }
    // Rust accepts "inf" and "nan", go-cty's parser does not.
    if text.chars().any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// A float result as a number value: whole numbers become integers, so
/// they print without a fraction; infinities and NaN are errors (hcl-rs
/// numbers cannot hold them).
fn float_value(f: f64) -> Result<Value> {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Ok(Value::from(f as i64));
    }
    Number::from_f64(f).map(Value::Number).ok_or_else(|| "the result is not a finite number".to_string())
}

/// A number as go-cty prints one (`big.Float.Text('f', -1)`): never an
/// exponent, no trailing `.0`. Rust's `{}` for `f64` is the same shortest
/// decimal written out.
pub(crate) fn number_text(n: &Number) -> String {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or_default();
        if f == 0.0 {
            // hcl-rs numbers have no negative zero (go-cty's print `-0`).
            return "0".into();
        }
        return format!("{f}");
    }
    n.to_string()
}

/// How go-cty names a value's type in messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// An object with its keys in go-cty's order (sorted).
fn sorted_object(entries: impl IntoIterator<Item = (String, Value)>) -> Value {
    let sorted: std::collections::BTreeMap<String, Value> = entries.into_iter().collect();
    Value::Object(sorted.into_iter().collect())
}

/// The elements of a list as go-cty unifies a tuple into a list: mixed
/// strings, numbers and bools all become strings; anything else stays.
fn unify(items: Vec<Value>) -> Vec<Value> {
    let has_string = items.iter().any(|v| matches!(v, Value::String(_)));
    let mixed = items.iter().any(|v| matches!(v, Value::Number(_) | Value::Bool(_)));
    let only_primitive = items.iter().all(|v| !matches!(v, Value::Array(_) | Value::Object(_)));
    if has_string && mixed && only_primitive {
        return items
            .into_iter()
            .map(|v| if v.is_null() { v } else { Value::String(to_string(&v).unwrap_or_default()) })
            .collect();
    }
    items
}

/// [`unify`] for a parameter that is a list or set of one element type:
/// elements that still differ in kind are an error, as in go-cty.
fn unify_strict(items: Vec<Value>) -> Result<Vec<Value>> {
    let items = unify(items);
    let kinds: std::collections::BTreeSet<&str> = items.iter().filter(|v| !v.is_null()).map(type_name).collect();
    if kinds.len() > 1 {
        return Err("all list elements must have the same type".into());
    }
    Ok(items)
}

/// go-cty's equality across values: numbers compare by value (1 == 1.0).
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
