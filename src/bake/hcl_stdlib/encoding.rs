//! Encodings: base64 and URL escaping (go-cty-funcs' `encoding`), JSON and
//! CSV (go-cty's `json.go`, `csv.go`), and the byte-buffer functions, whose
//! argument type no HCL expression can produce.

use base64::Engine;
use hcl::eval::FuncDef;
use hcl::Value;

use super::{fixed, number_text, sorted_object, string, Result};

pub(super) fn base64encode() -> FuncDef {
    fixed(1, |a| Ok(Value::from(base64::engine::general_purpose::STANDARD.encode(string(&a, 0)?))))
}

pub(super) fn base64decode() -> FuncDef {
    fixed(1, |a| {
        let text = string(&a, 0)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| format!("failed to decode base64 data {text:?}: {e}"))?;
        String::from_utf8(bytes)
            .map(Value::from)
            .map_err(|_| "the result of decoding the provided string is not valid UTF-8".into())
    })
}

/// Go's `url.QueryEscape`: a space is `+`, everything but letters, digits
/// and `-_.~` is `%XX`.
pub(super) fn urlencode() -> FuncDef {
    fixed(1, |a| {
        let mut out = String::new();
        for byte in string(&a, 0)?.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
                b' ' => out.push('+'),
                other => out.push_str(&format!("%{other:02X}")),
            }
        }
        Ok(Value::from(out))
    })
}

pub(super) fn jsonencode() -> FuncDef {
    fixed(1, |a| json_text(&a[0]).map(Value::from))
}

/// A value as go-cty writes JSON: object keys sorted, numbers without
/// exponents, and `<`, `>`, `&`, U+2028 and U+2029 escaped as Go's
/// `encoding/json` does.
pub(crate) fn json_text(value: &Value) -> Result<String> {
    let mut out = String::new();
    write_json(value, &mut out);
    Ok(out)
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number_text(n)),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|x, y| x.0.cmp(y.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(super) fn jsondecode() -> FuncDef {
    fixed(1, |a| {
        let text = string(&a, 0)?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
        Ok(from_json(json))
    })
}

pub(crate) fn from_json(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (_, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => hcl::Number::from_f64(f).map_or(Value::Null, Value::Number),
            _ => Value::Null,
        },
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(map) => sorted_object(map.into_iter().map(|(k, v)| (k, from_json(v)))),
    }
}

/// `csvdecode(text)`: the first row names the columns; each other row is
/// an object of strings.
pub(super) fn csvdecode() -> FuncDef {
    fixed(1, |a| {
        let text = string(&a, 0)?;
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
        let mut records = reader.records();
        let header = match records.next() {
            Some(row) => row.map_err(|e| e.to_string())?,
            None => return Err("missing header line".into()),
        };
        let mut out = Vec::new();
        for row in records {
            let row = row.map_err(|e| e.to_string())?;
            if row.len() != header.len() {
                let line = row.position().map_or(0, |p| p.line());
                return Err(format!("record on line {line}: wrong number of fields"));
            }
            out.push(sorted_object(header.iter().zip(row.iter()).map(|(k, v)| (k.to_string(), Value::from(v)))));
        }
        Ok(Value::Array(out))
    })
}

/// No expression has the byte-buffer type these take, so in buildx every
/// call is a type error; so it is here.
pub(super) fn byteslen() -> FuncDef {
    fixed(1, |_| Err("bytes required (no HCL value is a byte buffer)".into()))
}

pub(super) fn bytesslice() -> FuncDef {
    fixed(3, |_| Err("bytes required (no HCL value is a byte buffer)".into()))
}
