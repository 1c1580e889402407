//! Go's `strconv` parsers where BuildKit and buildx read attribute values
//! with them, so fbuild accepts exactly the spellings they accept.

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false
/// False`, nothing else.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_bool_takes_go_spellings_only() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(super::parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(super::parse_bool(no), Some(false), "{no}");
        }
        for neither in ["", "yes", "on", "tRUE", " true"] {
            assert_eq!(super::parse_bool(neither), None, "{neither:?}");
        }
    }
}
