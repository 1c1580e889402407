//! JSON as Go's `encoding/json` writes it, for documents whose digest must
//! be the one Go code computes (image configs, indexes): serde_json's bytes
//! with `<`, `>`, `&`, U+2028 and U+2029 escaped as Go's encoder escapes
//! them. They can only occur inside strings there, so replacing them
//! everywhere is exact. Field order and omitted fields are the caller's
//! types' business.

use serde::Serialize;

/// `json.Marshal(value)`.
pub(crate) fn marshal<T: Serialize>(value: &T) -> Vec<u8> {
    escape(serde_json::to_vec(value).expect("these types always serialize"))
}

/// `json.MarshalIndent(value, "", "  ")`.
pub(crate) fn marshal_indent<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"  ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer).expect("these types always serialize");
    escape(out)
}

fn escape(json: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(json).expect("serde_json writes UTF-8");
    if !text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return text.into_bytes();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// A JSON value as Go's `json.RawMessage` keeps it: objects keep their
/// keys in the order written (a `serde_json::Value` sorts them), so a
/// document that embeds another prints it as Go does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawJson {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<RawJson>),
    Object(Vec<(String, RawJson)>),
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            RawJson::Null => serializer.serialize_unit(),
            RawJson::Bool(b) => serializer.serialize_bool(*b),
            RawJson::Number(n) => n.serialize(serializer),
            RawJson::String(s) => serializer.serialize_str(s),
            RawJson::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            RawJson::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RawJson, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawJson;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<RawJson, E> {
                Ok(RawJson::Null)
            }
            fn visit_none<E>(self) -> Result<RawJson, E> {
                Ok(RawJson::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawJson, E> {
                Ok(RawJson::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawJson, E> {
                Ok(RawJson::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawJson, E> {
                Ok(RawJson::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawJson, E> {
                serde_json::Number::from_f64(v).map(RawJson::Number).ok_or_else(|| E::custom("not a JSON number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawJson, E> {
                Ok(RawJson::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<RawJson, E> {
                Ok(RawJson::String(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawJson, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawJson::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawJson, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(RawJson::Object(fields))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_json_keeps_the_order_of_keys() {
        let text = r#"{"z":1,"a":[true,null,{"y":"s","b":-2.5}]}"#;
        let raw: super::RawJson = serde_json::from_str(text).unwrap();
        assert_eq!(String::from_utf8(super::marshal(&raw)).unwrap(), text);
    }

    #[test]
    fn html_characters_and_line_separators_are_escaped_as_go_does() {
        let value = serde_json::json!({"a": "<&>\u{2028}\u{2029}é"});
        assert_eq!(String::from_utf8(super::marshal(&value)).unwrap(), r#"{"a":"\u003c\u0026\u003e\u2028\u2029é"}"#);
        assert_eq!(
            super::marshal_indent(&value),
            b"{\n  \"a\": \"\\u003c\\u0026\\u003e\\u2028\\u2029\xc3\xa9\"\n}".to_vec()
        );
    }
}
