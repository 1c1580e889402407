//! HCL `variable` blocks as buildx v0.38.2 gives them their values
//! (`bake/hclparser`): a `type` converts the default (go-cty's conversion);
//! a typed variable without a default is null, an untyped one the empty
//! string; a value from `--var` or the environment is read by the type —
//! JSON from `NAME_JSON`, CSV for lists, sets, tuples and maps, Go's
//! parsers for bools and numbers — and refused where buildx refuses it.
//! `--list variables` shows the type and the value as buildx prints them.

use hcl::{Expression, Value};

use super::hcl_stdlib::lazy::{convert_value, Type};
use crate::output::OutputProblem;

/// Why a variable has no value (buildx's words). `Type` and conversion
/// errors come from the HCL function library, whose errors are text (hcl-rs
/// fixes a function's error type as `String`), so they stay text here.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VariableError {
    /// The `type` attribute is not a type.
    #[error("{0}")]
    Type(String),
    #[error("invalid type {ty} for variable {name} default value: {reason}")]
    Default { ty: String, name: String, reason: String },
    #[error("failed to convert variable {name} from JSON: {error}")]
    JsonSyntax { name: String, error: serde_json::Error },
    #[error("failed to convert variable {name} from JSON: a value of type any is written {{\"value\": VALUE, \"type\": TYPE}}")]
    JsonAny { name: String },
    #[error("failed to convert variable {name} from JSON: {reason}")]
    JsonType { name: String, reason: String },
    #[error("failed to convert variable {name} from CSV: {reason}")]
    FromCsv { name: String, reason: Box<VariableError> },
    #[error("unsupported type {ty} for variable {name}")]
    Unsupported { ty: String, name: String },
    #[error("failed to parse {name} as bool: invalid syntax: {text:?}")]
    NotBool { name: String, text: String },
    #[error("failed to parse {name} as number: {text:?}")]
    NotNumber { name: String, text: String },
    #[error("invalid number {0:?}")]
    BadNumber(String),
    #[error("failed to parse {text} as CSV: {problem}")]
    CsvSyntax { text: String, problem: OutputProblem },
    #[error("unsupported type {0} for CSV specification")]
    CsvUnsupported(String),
    #[error("{ty} expects {expected} elements but only {given} provided")]
    TupleLength { ty: String, expected: usize, given: usize },
    #[error("expected one k/v pair but got {pieces} pieces from {field}")]
    MapField { pieces: usize, field: String },
    /// A list converted to a set or map of the declared type.
    #[error("{0}")]
    Convert(String),
}

/// The type a variable's `type` attribute declares; `None` when it has none
/// (or `type = null`).
pub(super) fn declared(expr: Option<&Expression>) -> Result<Option<Type>, VariableError> {
    match expr {
        None | Some(Expression::Null) => Ok(None),
        Some(expr) => Type::parse(expr).map(Some).map_err(VariableError::Type),
    }
}

/// The value before any override: the default converted to the type; with
/// no default, null for a typed variable and `""` for an untyped one.
pub(super) fn initial(name: &str, default: Option<Value>, ty: Option<&Type>) -> Result<Value, VariableError> {
    match (default, ty) {
        (None, Some(_)) => Ok(Value::Null),
        (None, None) => Ok(Value::from("")),
        (Some(value), None) => Ok(value),
        (Some(value), Some(ty)) => convert_value(value, ty).map_err(|reason| VariableError::Default {
            ty: constraint_name(ty),
            name: name.to_owned(),
            reason,
        }),
    }
}

/// The value of variable `name` once `lookup` (`--var`, then the
/// environment) is consulted. `declared` says whether a name is a
/// variable of the files (`NAME_JSON` is an override only when it is not).
pub(super) fn overridden(
    name: &str,
    value: Value,
    had_default: bool,
    ty: Option<&Type>,
    lookup: &dyn Fn(&str) -> Option<String>,
    declared: &dyn Fn(&str) -> bool,
) -> Result<Value, VariableError> {
    let mut text = lookup(name);
    let mut json = false;
    if text.is_none() || ty.is_some() {
        let json_name = format!("{name}_JSON");
        if !declared(&json_name) {
            if let Some(found) = lookup(&json_name) {
                text = Some(found);
                json = true;
            }
        }
    }
    let Some(text) = text else { return Ok(value) };
    match ty {
        Some(ty) if json => {
            let parsed: serde_json::Value = serde_json::from_str(&text)
                .map_err(|error| VariableError::JsonSyntax { name: name.to_owned(), error })?;
            // go-cty reads a value of type `any` with its type beside it.
            let parsed = match (ty, parsed) {
                (Type::Any, serde_json::Value::Object(mut wrapped)) if wrapped.contains_key("type") => {
                    wrapped.remove("value").unwrap_or_default()
                }
                (Type::Any, _) => return Err(VariableError::JsonAny { name: name.to_owned() }),
                (_, parsed) => parsed,
            };
            let parsed = super::hcl_stdlib::from_json(parsed);
            convert_value(parsed, ty).map_err(|reason| VariableError::JsonType { name: name.to_owned(), reason })
        }
        Some(ty @ (Type::List(_) | Type::Set(_) | Type::Tuple(_) | Type::Map(_))) => from_csv(name, &text, ty)
            .map_err(|reason| VariableError::FromCsv { name: name.to_owned(), reason: Box::new(reason) }),
        Some(ty @ (Type::String | Type::Number | Type::Bool)) => primitive(name, &text, ty),
        Some(ty) => Err(VariableError::Unsupported { ty: type_name(ty), name: name.to_owned() }),
        None if !had_default => Ok(Value::String(text)),
        None => match &value {
            Value::Null => Ok(Value::String(text)),
            Value::String(_) => primitive(name, &text, &Type::String),
            Value::Number(_) => primitive(name, &text, &Type::Number),
            Value::Bool(_) => primitive(name, &text, &Type::Bool),
            Value::Array(_) => Err(VariableError::Unsupported { ty: "tuple".into(), name: name.to_owned() }),
            Value::Object(_) => Err(VariableError::Unsupported { ty: "object".into(), name: name.to_owned() }),
        },
    }
}

/// buildx's `convertPrimitive`: Go's `strconv` parsers.
fn primitive(name: &str, text: &str, ty: &Type) -> Result<Value, VariableError> {
    match ty {
        Type::Bool => crate::gostrconv::parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| VariableError::NotBool { name: name.to_owned(), text: text.to_owned() }),
        Type::Number => {
            // Go's ParseFloat; Rust's parser differs only on hex floats.
            let number = text
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| VariableError::NotNumber { name: name.to_owned(), text: text.to_owned() })?;
            // Whole numbers stay integers, as go-cty prints them.
            if number.fract() == 0.0 && number.abs() < 9.0e15 {
                Ok(Value::from(number as i64))
            } else {
                hcl::Number::from_f64(number)
                    .map(Value::Number)
                    .ok_or_else(|| VariableError::BadNumber(text.to_owned()))
            }
        }
        _ => Ok(Value::String(text.to_string())),
    }
}

/// buildx's `valueFromCSV`: the fields of one CSV record, each a primitive
/// of the element type; a map's fields are `KEY:VALUE`.
fn from_csv(name: &str, text: &str, ty: &Type) -> Result<Value, VariableError> {
    let fields = if text.is_empty() {
        vec![String::new()]
    } else {
        crate::output::parse::csv_fields(text)
            .map_err(|problem| VariableError::CsvSyntax { text: text.to_owned(), problem })?
    };
    let element = |ty: &Type| -> Result<Vec<Value>, VariableError> {
        if !matches!(ty, Type::String | Type::Number | Type::Bool) {
            return Err(VariableError::CsvUnsupported(type_name(ty)));
        }
        fields.iter().map(|f| primitive(name, f, ty)).collect()
    };
    match ty {
        Type::List(inner) => Ok(Value::Array(element(inner)?)),
        Type::Set(inner) => convert_value(Value::Array(element(inner)?), ty).map_err(VariableError::Convert),
        Type::Tuple(types) => {
            if types.len() != fields.len() {
                return Err(VariableError::TupleLength {
                    ty: type_name(ty),
                    expected: types.len(),
                    given: fields.len(),
                });
            }
            let mut items = Vec::new();
            for (field, ty) in fields.iter().zip(types) {
                if !matches!(ty, Type::String | Type::Number | Type::Bool) {
                    return Err(VariableError::CsvUnsupported("tuple".into()));
                }
                items.push(primitive(name, field, ty)?);
            }
            Ok(Value::Array(items))
        }
        Type::Map(inner) => {
            if !matches!(**inner, Type::String | Type::Number | Type::Bool) {
                return Err(VariableError::CsvUnsupported(type_name(ty)));
            }
            let mut entries = Vec::new();
            for field in &fields {
                let pair = colon_fields(field);
                let [key, value] = pair.as_slice() else {
                    return Err(VariableError::MapField { pieces: pair.len(), field: field.clone() });
                };
                entries.push((key.clone(), primitive(name, value, inner)?));
            }
            convert_value(Value::Object(entries.into_iter().collect()), ty).map_err(VariableError::Convert)
        }
        other => Err(VariableError::CsvUnsupported(type_name(other))),
    }
}

/// A `KEY:VALUE` field split as a CSV record with `:` for the comma.
fn colon_fields(field: &str) -> Vec<String> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(b':').from_reader(field.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => record.iter().map(str::to_owned).collect(),
        _ => vec![field.to_string()],
    }
}

/// go-cty's `FriendlyName` of a type (in error messages).
fn type_name(ty: &Type) -> String {
    match ty {
        Type::Any => "dynamic".into(),
        other => constraint_name(other),
    }
}

/// go-cty's `FriendlyNameForConstraint` (buildx's TYPE column).
pub(super) fn constraint_name(ty: &Type) -> String {
    match ty {
        Type::Any => "any type".into(),
        Type::String => "string".into(),
        Type::Number => "number".into(),
        Type::Bool => "bool".into(),
        Type::List(inner) => format!("list of {}", constraint_name(inner)),
        Type::Set(inner) => format!("set of {}", constraint_name(inner)),
        Type::Map(inner) => format!("map of {}", constraint_name(inner)),
        Type::Tuple(_) => "tuple".into(),
        Type::Object(_) => "object".into(),
    }
}

/// The VALUE buildx lists: nothing for null; a typed value as JSON (a
/// string without its quotes); an untyped primitive as text, anything
/// else as JSON. `any` wraps the JSON with the value's go-cty type.
pub(super) fn listed(value: &Value, ty: Option<&Type>) -> Option<String> {
    use super::hcl_stdlib::json_text;
    match (value, ty) {
        (Value::Null, _) => None,
        (Value::String(s), Some(Type::String) | None) => Some(s.clone()),
        (Value::Number(n), None) => Some(super::hcl_stdlib::number_text(n)),
        (Value::Bool(b), None) => Some(b.to_string()),
        (value, Some(Type::Any)) => {
            let json = json_text(value).ok()?;
            Some(format!("{{\"value\":{json},\"type\":{}}}", cty_type_json(value)))
        }
        (value, _) => json_text(value).ok(),
    }
}

/// go-cty's JSON for the type of `value` (as a literal gives it).
fn cty_type_json(value: &Value) -> String {
    match value {
        Value::Null => "\"dynamic\"".into(),
        Value::Bool(_) => "\"bool\"".into(),
        Value::Number(_) => "\"number\"".into(),
        Value::String(_) => "\"string\"".into(),
        Value::Array(items) => {
            let types: Vec<String> = items.iter().map(cty_type_json).collect();
            format!("[\"tuple\",[{}]]", types.join(","))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let types: Vec<String> = entries.iter().map(|(k, v)| format!("{:?}:{}", k, cty_type_json(v))).collect();
            format!("[\"object\",{{{}}}]", types.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(text: &str) -> Type {
        let body: hcl::Body = hcl::from_str(&format!("t = {text}\n")).unwrap();
        let attr = body.attributes().next().unwrap();
        Type::parse(attr.expr()).unwrap()
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string())
    }

    #[test]
    fn typed_defaults_convert_and_missing_ones_are_null() {
        assert_eq!(initial("B", None, Some(&ty("bool"))).unwrap(), Value::Null);
        assert_eq!(initial("U", None, None).unwrap(), Value::from(""));
        assert_eq!(initial("S", Some(Value::from(5)), Some(&ty("string"))).unwrap(), Value::from("5"));
        let err = initial("N", Some(Value::from("x")), Some(&ty("number"))).unwrap_err();
        assert!(matches!(&err, VariableError::Default { name, .. } if name == "N"), "{err}");
        assert!(err.to_string().starts_with("invalid type number for variable N default value"), "{err}");
    }

    #[test]
    fn overrides_follow_the_type() {
        let no = |_: &str| false;
        let list = ty("list(number)");
        let got = overridden("L", Value::Null, false, Some(&list), &env(&[("L", "1,2")]), &no).unwrap();
        assert_eq!(got, Value::Array(vec![Value::from(1), Value::from(2)]));
        // A typed variable prefers NAME_JSON.
        let got = overridden("L", Value::Null, false, Some(&list), &env(&[("L", "1"), ("L_JSON", "[3]")]), &no);
        assert_eq!(got.unwrap(), Value::Array(vec![Value::from(3)]));
        let map = ty("map(string)");
        let got = overridden("M", Value::Null, false, Some(&map), &env(&[("M", "b:2,a:1")]), &no).unwrap();
        assert_eq!(json_of(&got), r#"{"a":"1","b":"2"}"#);
        let err = overridden("B", Value::Null, false, Some(&ty("bool")), &env(&[("B", "yes")]), &no).unwrap_err();
        assert!(matches!(&err, VariableError::NotBool { text, .. } if text == "yes"), "{err}");
        assert!(err.to_string().contains("failed to parse B as bool"), "{err}");
        let err = overridden("O", Value::Null, false, Some(&ty("object({a=string})")), &env(&[("O", "x")]), &no);
        assert_eq!(err.unwrap_err().to_string(), "unsupported type object for variable O");
        // Untyped: by the default's type; a list default cannot be overridden.
        let untyped = overridden("N", Value::from(1), true, None, &env(&[("N", "2.5")]), &no).unwrap();
        assert_eq!(listed(&untyped, None).unwrap(), "2.5");
        let err = overridden("T", Value::Array(vec![]), true, None, &env(&[("T", "x")]), &no).unwrap_err();
        assert_eq!(err.to_string(), "unsupported type tuple for variable T");
    }

    fn json_of(value: &Value) -> String {
        super::super::hcl_stdlib::json_text(value).unwrap()
    }

    #[test]
    fn listing_matches_buildx() {
        assert_eq!(constraint_name(&ty("list(number)")), "list of number");
        assert_eq!(constraint_name(&ty("any")), "any type");
        assert_eq!(listed(&Value::Null, Some(&ty("bool"))), None);
        assert_eq!(listed(&Value::from("x"), Some(&ty("string"))).unwrap(), "x");
        let tuple = Value::Array(vec![Value::from("x"), Value::from(1)]);
        assert_eq!(
            listed(&tuple, Some(&ty("any"))).unwrap(),
            r#"{"value":["x",1],"type":["tuple",["string","number"]]}"#
        );
    }
}
