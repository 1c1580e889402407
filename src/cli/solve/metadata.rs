//! `--metadata-file`: the daemon's exporter response as JSON, written the way
//! buildctl writes it (values that are base64-encoded JSON objects, such as
//! `containerimage.descriptor`, are decoded), atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use base64::Engine;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path:?} ({flag})")]
pub struct MetadataError {
    path: std::path::PathBuf,
    flag: &'static str,
    #[source]
    source: std::io::Error,
}

/// The JSON document for an exporter response.
pub fn to_json(response: &BTreeMap<String, String>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (key, value) in response {
        // A subrequest's `result.json` (`--call`) is JSON already, not
        // base64 (buildx's decodeExporterResponse).
        if key == "result.json" {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(value) {
                out.insert(key.clone(), json);
                continue;
            }
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).ok())
            .filter(|object| !object.is_empty());
        let entry = match decoded {
            Some(object) => serde_json::Value::Object(object),
            None => serde_json::Value::String(value.clone()),
        };
        out.insert(key.clone(), entry);
    }
    serde_json::Value::Object(out)
}

/// Writes the metadata next to `path` and renames it into place.
pub fn write(path: &Path, response: &BTreeMap<String, String>) -> Result<(), MetadataError> {
    let text = serde_json::to_string_pretty(&to_json(response)).map_err(|e| MetadataError {
        path: path.to_path_buf(),
        flag: "--metadata-file",
        source: e.into(),
    })?;
    write_text(path, &text, "--metadata-file")
}

/// Writes `text` next to `path` and renames it into place; errors name the
/// user's path and `flag`, never the temporary file.
pub fn write_text(path: &Path, text: &str, flag: &'static str) -> Result<(), MetadataError> {
    let wrap = |source| MetadataError { path: path.to_path_buf(), flag, source };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(wrap)?;
    temp.write_all(text.as_bytes()).map_err(wrap)?;
    // 0644 as buildx's atomicwriter (a temp file starts private).
    temp.as_file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(wrap)?;
    temp.persist(path).map_err(|e| wrap(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_json_objects_only() {
        let descriptor = base64::engine::general_purpose::STANDARD.encode(r#"{"digest":"sha256:abc","size":12}"#);
        let response: BTreeMap<String, String> = [
            ("containerimage.digest".to_string(), "sha256:abc".to_string()),
            ("containerimage.descriptor".to_string(), descriptor),
            ("image.name".to_string(), "r/app:1".to_string()),
        ]
        .into();
        let json = to_json(&response);
        assert_eq!(json["containerimage.digest"], "sha256:abc");
        assert_eq!(json["containerimage.descriptor"]["size"], 12);
        assert_eq!(json["image.name"], "r/app:1");
        let call: BTreeMap<String, String> = [("result.json".to_string(), r#"{"targets":[]}"#.to_string())].into();
        assert_eq!(to_json(&call)["result.json"]["targets"], serde_json::json!([]));
    }

    #[test]
    fn writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        write(&path, &[("k".to_string(), "v".to_string())].into()).unwrap();
        let read: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(read["k"], "v");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left behind");
    }
}
