//! Numbers, comparisons and booleans: go-cty's `number.go`, `bool.go` and
//! `general.go`. Sums, differences and products of integers stay exact
//! while they fit 64 bits; the rest is computed in `f64`.

use hcl::eval::{FuncArgs, FuncDef};
use hcl::{Number, Value};

use super::{boolean, equal as values_equal, fixed, float, float_value, integer, number, string, variadic, Result};

/// Two numbers as integers when both are, else as floats.
enum Pair {
    Int(i128, i128),
    Float(f64, f64),
}

fn pair(args: &FuncArgs) -> Result<Pair> {
    let (a, b) = (number(args, 0)?, number(args, 1)?);
    Ok(match (exact(&a), exact(&b)) {
        (Some(a), Some(b)) => Pair::Int(a, b),
        _ => Pair::Float(a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN)),
    })
}

/// An integer number exactly (hcl-rs keeps integers up to `u64::MAX`).
fn exact(n: &Number) -> Option<i128> {
    if n.is_f64() {
        return None;
    }
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

/// An exact integer result as a number: integers while they fit 64 bits.
fn int_value(n: i128) -> Result<Value> {
    if let Ok(i) = i64::try_from(n) {
        return Ok(Value::from(i));
    }
    if let Ok(u) = u64::try_from(n) {
        return Ok(Value::from(u));
    }
    float_value(n as f64)
}

fn arithmetic(args: &FuncArgs, int: fn(i128, i128) -> Option<i128>, float: fn(f64, f64) -> f64) -> Result<Value> {
    match pair(args)? {
        Pair::Int(a, b) => match int(a, b) {
            Some(n) => int_value(n),
            None => float_value(float(a as f64, b as f64)),
        },
        Pair::Float(a, b) => float_value(float(a, b)),
    }
}

pub(super) fn add() -> FuncDef {
    fixed(2, |a| arithmetic(&a, i128::checked_add, |x, y| x + y))
}

pub(super) fn subtract() -> FuncDef {
    fixed(2, |a| arithmetic(&a, i128::checked_sub, |x, y| x - y))
}

pub(super) fn multiply() -> FuncDef {
    fixed(2, |a| arithmetic(&a, i128::checked_mul, |x, y| x * y))
}

pub(super) fn divide() -> FuncDef {
    fixed(2, |a| match pair(&a)? {
        Pair::Int(_, 0) | Pair::Float(_, 0.0) => Err("cannot divide by zero".into()),
        Pair::Int(x, y) if x % y == 0 => int_value(x / y),
        Pair::Int(x, y) => float_value(x as f64 / y as f64),
        Pair::Float(x, y) => float_value(x / y),
    })
}

/// go-cty: `a - b * trunc(a / b)`, so the result has the sign of `a`;
/// anything modulo zero is itself.
pub(super) fn modulo() -> FuncDef {
    fixed(2, |a| match pair(&a)? {
        Pair::Int(x, 0) => int_value(x),
        Pair::Int(x, y) => int_value(x % y),
        Pair::Float(x, 0.0) => float_value(x),
        Pair::Float(x, y) => float_value(x - y * (x / y).trunc()),
    })
}

pub(super) fn negate() -> FuncDef {
    fixed(1, |a| {
        let n = number(&a, 0)?;
        match exact(&n) {
            Some(i) => int_value(-i),
            None => float_value(-n.as_f64().unwrap_or(f64::NAN)),
        }
    })
}

pub(super) fn absolute() -> FuncDef {
    fixed(1, |a| {
        let n = number(&a, 0)?;
        match exact(&n) {
            Some(i) => int_value(i.abs()),
            None => float_value(n.as_f64().unwrap_or(f64::NAN).abs()),
        }
    })
}

/// Whole numbers pass through; others are cut toward zero.
pub(super) fn int() -> FuncDef {
    fixed(1, |a| round(&a, f64::trunc))
}

pub(super) fn ceil() -> FuncDef {
    fixed(1, |a| round(&a, f64::ceil))
}

pub(super) fn floor() -> FuncDef {
    fixed(1, |a| round(&a, f64::floor))
}

fn round(args: &FuncArgs, how: fn(f64) -> f64) -> Result<Value> {
    let n = number(args, 0)?;
    if !n.is_f64() {
        return Ok(Value::Number(n));
    }
    let f = how(n.as_f64().unwrap_or(f64::NAN));
    if f.abs() < 9.2e18 {
        Ok(Value::from(f as i64))
    } else {
        float_value(f)
    }
}

pub(super) fn log() -> FuncDef {
    fixed(2, |a| float_value(float(&a, 0)?.ln() / float(&a, 1)?.ln()))
}

pub(super) fn pow() -> FuncDef {
    fixed(2, |a| float_value(float(&a, 0)?.powf(float(&a, 1)?)))
}

/// go-cty converts the argument to an integer first, so `signum(1.5)` is
/// an error.
pub(super) fn signum() -> FuncDef {
    fixed(1, |a| Ok(Value::from(integer(&a, 0)?.signum())))
}

pub(super) fn max() -> FuncDef {
    variadic(0, |a| extreme(&a, std::cmp::Ordering::Greater))
}

pub(super) fn min() -> FuncDef {
    variadic(0, |a| extreme(&a, std::cmp::Ordering::Less))
}

fn extreme(args: &FuncArgs, wanted: std::cmp::Ordering) -> Result<Value> {
    if args.is_empty() {
        return Err("must pass at least one number".into());
    }
    let mut best = number(args, 0)?;
    for i in 1..args.len() {
        let n = number(args, i)?;
        if compare(&n, &best) == Some(wanted) {
            best = n;
        }
    }
    Ok(Value::Number(best))
}

fn compare(a: &Number, b: &Number) -> Option<std::cmp::Ordering> {
    match (exact(a), exact(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn comparison(args: &FuncArgs, test: fn(std::cmp::Ordering) -> bool) -> Result<Value> {
    let (a, b) = (number(args, 0)?, number(args, 1)?);
    Ok(Value::Bool(compare(&a, &b).is_some_and(test)))
}

pub(super) fn greaterthan() -> FuncDef {
    fixed(2, |a| comparison(&a, |o| o.is_gt()))
}

pub(super) fn greaterthanorequalto() -> FuncDef {
    fixed(2, |a| comparison(&a, |o| o.is_ge()))
}

pub(super) fn lessthan() -> FuncDef {
    fixed(2, |a| comparison(&a, |o| o.is_lt()))
}

pub(super) fn lessthanorequalto() -> FuncDef {
    fixed(2, |a| comparison(&a, |o| o.is_le()))
}

pub(super) fn equal() -> FuncDef {
    fixed(2, |a| Ok(Value::Bool(values_equal(&a[0], &a[1]))))
}

pub(super) fn notequal() -> FuncDef {
    fixed(2, |a| Ok(Value::Bool(!values_equal(&a[0], &a[1]))))
}

pub(super) fn and() -> FuncDef {
    fixed(2, |a| Ok(Value::Bool(boolean(&a, 0)? && boolean(&a, 1)?)))
}

pub(super) fn or() -> FuncDef {
    fixed(2, |a| Ok(Value::Bool(boolean(&a, 0)? || boolean(&a, 1)?)))
}

pub(super) fn not() -> FuncDef {
    fixed(1, |a| Ok(Value::Bool(!boolean(&a, 0)?)))
}

/// `parseint(string, base)`: Go's `big.Int.SetString`, bases 2 to 62
/// (above 36, lower-case letters are 10-35 and upper-case 36-61).
pub(super) fn parseint() -> FuncDef {
    fixed(2, |a| {
        if !matches!(a[0], Value::String(_)) {
            return Err(format!("argument 1: first argument must be a string, not {}", super::type_name(&a[0])));
        }
        let text = string(&a, 0)?;
        let base = integer(&a, 1)?;
        if !(2..=62).contains(&base) {
            return Err("argument 2: base must be a whole number between 2 and 62 inclusive".into());
        }
        parse_int(&text, base as u32)
            .ok_or_else(|| format!("argument 1: cannot parse {text:?} as a base {base} integer"))
    })
}

fn parse_int(text: &str, base: u32) -> Option<Value> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() {
        return None;
    }
    let mut exact: Option<i128> = Some(0);
    let mut approx = 0f64;
    for c in digits.chars() {
        let d = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 10,
            'A'..='Z' if base <= 36 => c as u32 - 'A' as u32 + 10,
            'A'..='Z' => c as u32 - 'A' as u32 + 36,
            _ => return None,
        };
        if d >= base {
            return None;
        }
        exact = exact.and_then(|n| n.checked_mul(base as i128)?.checked_add(d as i128));
        approx = approx * base as f64 + d as f64;
    }
    let sign = if negative { -1 } else { 1 };
    match exact.map(|n| n * sign) {
        Some(n) if i64::try_from(n).is_ok() => Some(Value::from(n as i64)),
        Some(n) if u64::try_from(n).is_ok() => Some(Value::from(n as u64)),
        _ => Number::from_f64(approx * sign as f64).map(Value::Number),
    }
}
