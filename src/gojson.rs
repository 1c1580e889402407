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

#[cfg(test)]
mod tests {
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
