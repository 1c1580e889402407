//! Which files a bake reads: the `-f` files in the order given, or
//! buildx's default names found in the current folder, in buildx's order
//! (compose files, then `docker-bake.json`, `docker-bake.hcl` and their
//! `.override` forms), each read by its format and merged, later on top.

use std::path::{Path, PathBuf};

use super::{BakeError, Definition, Env};

/// buildx's default file names (compose-go's `DefaultFileNames` and
/// `DefaultOverrideFileNames`, then bake's own), in the order buildx merges them.
pub(crate) const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
    "docker-bake.json",
    "docker-bake.hcl",
    "docker-bake.override.json",
    "docker-bake.override.hcl",
];

/// The files to read: `explicit` when given, else the defaults that exist in `dir`.
pub(crate) fn find(dir: &Path, explicit: &[PathBuf]) -> Result<Vec<PathBuf>, BakeError> {
    if !explicit.is_empty() {
        return Ok(explicit.to_vec());
    }
    let found: Vec<PathBuf> = DEFAULT_FILES
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.is_file())
        .map(|path| path.strip_prefix(dir).map(Path::to_path_buf).unwrap_or(path))
        .collect();
    if found.is_empty() {
        return Err(BakeError::NoFiles { dir: dir.to_path_buf() });
    }
    Ok(found)
}

/// Reads and merges `paths` (relative to `cwd`). `env` is the process
/// environment (variables and compose interpolation read it).
pub(crate) fn load(cwd: &Path, paths: &[PathBuf], env: &Env) -> Result<Definition, BakeError> {
    let mut definition = Definition::default();
    for path in paths {
        // `-f -` reads the file from standard input, as buildx does.
        let text = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|source| BakeError::Read { path: path.clone(), source })?;
            text
        } else {
            fs_err::read_to_string(cwd.join(path)).map_err(|source| BakeError::Read { path: path.clone(), source })?
        };
        let name = path.display().to_string();
        let mut one = match Format::of(path, &text) {
            Format::Compose => super::compose::load(&name, &text, cwd, path.parent().unwrap_or(Path::new("")), env)?,
            Format::Hcl => super::hcl::load_hcl(&name, &text, env)?,
            Format::Json => super::hcl::load_json(&name, &text, env)?,
        };
        one.has_variable_files = !matches!(Format::of(path, &text), Format::Compose);
        // buildx's rule for names; it also keeps names usable as folder and
        // reference parts (`target:../../x` names nothing).
        for (target, _) in &one.targets {
            if target.is_empty() || !target.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(BakeError::Invalid {
                    location: format!("{name}: target {target:?}"),
                    message: "Invalid name; only \"[a-zA-Z0-9_-]+\" are allowed".into(),
                });
            }
        }
        definition.merge(one);
    }
    Ok(definition)
}

enum Format {
    Compose,
    Hcl,
    Json,
}

impl Format {
    /// By extension, as buildx does; other names by content.
    fn of(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => Format::Compose,
            Some("json") => Format::Json,
            Some("hcl") => Format::Hcl,
            _ if text.trim_start().starts_with('{') => Format::Json,
            _ if text.lines().any(|l| l.starts_with("services:")) => Format::Compose,
            _ => Format::Hcl,
        }
    }
}
