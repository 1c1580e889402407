//! `-o/--output`, `-t/--tag` and `--push`, parsed the way buildx parses them.
//!
//! An output is a CSV list of `key=value` fields (quote a field that holds a
//! comma: `type=local,"dest=a,b"`), keys case-insensitive. `type=registry` is
//! `type=image,push=true`. A bare value is a shorthand: `-o DIR` is
//! `type=local,dest=DIR` and `-o -` is `type=tar,dest=-` (unlike buildx, a
//! bare value holding `=`, such as `dest=out`, is read as CSV and so asks for
//! a type, rather than naming a folder called `dest=out`). tar, oci and docker
//! outputs without `dest` (or with `dest=-`) go to standard output, which is
//! refused when it is a terminal.
//!
//! Everything is checked here, before anything is sent to the daemon: the
//! exporter type, the fields, the boolean and compression attributes the
//! daemon would reject later, the tags, and the destinations on disk.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{ExportEntry, ExporterType, OutputDest};

/// A flag value that cannot become an output. Each message names the flag and
/// its value and says what is wrong, on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    #[error("invalid --output {value:?}: {problem}")]
    Output { value: String, problem: OutputProblem },
    #[error("invalid --tag {value:?}: {problem}")]
    Tag { value: String, problem: crate::llb::ReferenceError },
    #[error("--push needs an image name: pass -t/--tag or name=<ref> in --output")]
    PushWithoutName,
    #[error("invalid --output {value:?}: cannot inspect {}", path.display())]
    Inspect {
        value: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What is wrong with one `--output` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputProblem {
    #[error("the value is empty")]
    Empty,
    #[error("malformed CSV: {0}")]
    Csv(String),
    #[error("the value spans several lines")]
    MultipleLines,
    #[error("field {0:?} is not a key=value pair")]
    NotKeyValue(String),
    #[error("field {0:?} has an empty key")]
    EmptyKey(String),
    #[error("type=<type> is missing")]
    MissingType,
    #[error("unknown output type {0:?} (expected image, registry, local, tar, oci or docker)")]
    UnknownType(String),
    #[error("output= is not an option; did you mean dest={0}?")]
    OutputKey(String),
    #[error("type=local needs dest=<folder>")]
    MissingDir,
    #[error("type=local writes a folder, not standard output; use type=tar,dest=- for a tarball on stdout")]
    LocalToStdout,
    #[error("type={0} sends nothing back, so dest= does not apply")]
    DestNotSupported(ExporterType),
    #[error("{key}={value} is not a boolean (use true or false)")]
    NotBool { key: String, value: String },
    #[error("{key}={value} is not an integer")]
    NotInteger { key: String, value: String },
    #[error("compression={0} is not one of uncompressed, gzip, estargz, zstd")]
    Compression(String),
    #[error("tar=false writes an OCI layout folder: it needs dest=<folder>")]
    LayoutFolder,
    #[error("mode={0} is not supported; the local output copies files into dest (mode=copy)")]
    LocalMode(String),
    #[error(
        "standard output is a terminal; refusing to write the {0} tarball to it (pass dest=FILE or redirect stdout)"
    )]
    StdoutIsTerminal(ExporterType),
    #[error("another output already writes to standard output")]
    StdoutTwice,
    #[error("dest={} is a folder, but type={exporter} writes a file", .path.display())]
    DestIsDir { path: PathBuf, exporter: ExporterType },
    #[error("dest={} exists and is not a folder", .0.display())]
    DestNotDir(PathBuf),
    #[error("dest={} is a symbolic link; fbuild does not write through links, so name the target itself", .0.display())]
    DestIsSymlink(PathBuf),
    #[error("dest={} cannot be created: {} is not a folder", .path.display(), .blocker.display())]
    ParentNotDir { path: PathBuf, blocker: PathBuf },
}

/// Callers that fold a problem into their own error text (e.g. the cache
/// flags, which share the CSV syntax) take it as a string.
impl From<OutputProblem> for String {
    fn from(problem: OutputProblem) -> String {
        problem.to_string()
    }
}

/// Parses one `-o/--output` value. Pure: destinations on disk and the
/// terminal are checked by [`exports_from_flags`].
pub fn parse_output(value: &str) -> Result<ExportEntry, OutputError> {
    let fail = |problem| OutputError::Output { value: value.to_owned(), problem };
    let fields = csv_fields(value).map_err(fail)?;

    // The shorthands: one field that is not a key=value pair.
    if let [only] = fields.as_slice() {
        if only == value && !only.contains('=') {
            let (exporter, destination) = if only == "-" {
                (ExporterType::Tar, OutputDest::Stdout)
            } else {
                (ExporterType::Local, OutputDest::Dir(PathBuf::from(only)))
            };
            return Ok(ExportEntry { exporter, attrs: BTreeMap::new(), destination: Some(destination) });
        }
    }

    let mut kind = None;
    let mut attrs = BTreeMap::new();
    for field in &fields {
        let Some((key, val)) = field.split_once('=') else {
            return Err(fail(OutputProblem::NotKeyValue(field.clone())));
        };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(fail(OutputProblem::EmptyKey(field.clone())));
        }
        if key == "type" {
            kind = Some(val.to_owned());
        } else {
            attrs.insert(key, val.to_owned());
        }
    }
    let kind = kind.filter(|kind| !kind.is_empty()).ok_or_else(|| fail(OutputProblem::MissingType))?;
    if let Some(dest) = attrs.get("output") {
        return Err(fail(OutputProblem::OutputKey(dest.clone())));
    }
    let exporter = match kind.as_str() {
        "image" => ExporterType::Image,
        "registry" => {
            attrs.entry("push".to_owned()).or_insert_with(|| "true".to_owned());
            ExporterType::Image
        }
        "local" => ExporterType::Local,
        "tar" => ExporterType::Tar,
        "oci" => ExporterType::Oci,
        "docker" => ExporterType::Docker,
        _ => return Err(fail(OutputProblem::UnknownType(kind))),
    };
    check_attrs(exporter, &attrs).map_err(fail)?;

    let dest = attrs.remove("dest");
    let destination = match exporter {
        ExporterType::Local => match dest.as_deref() {
            None | Some("") => return Err(fail(OutputProblem::MissingDir)),
            Some("-") => return Err(fail(OutputProblem::LocalToStdout)),
            Some(dir) => Some(OutputDest::Dir(PathBuf::from(dir))),
        },
        ExporterType::Oci | ExporterType::Docker
            if attrs.get("tar").is_some_and(|v| crate::gostrconv::parse_bool(v) == Some(false)) =>
        {
            match dest.as_deref() {
                None | Some("") | Some("-") => return Err(fail(OutputProblem::LayoutFolder)),
                Some(dir) => Some(OutputDest::Layout(PathBuf::from(dir))),
            }
        }
        ExporterType::Tar | ExporterType::Oci | ExporterType::Docker => match dest.as_deref() {
            // Our own standard output by any of its names: written as `-` is,
            // whatever it is (a pipe, a terminal, a redirected file).
            None | Some("") | Some("-") => Some(OutputDest::Stdout),
            Some(name) if STDOUT_NAMES.contains(&name) => Some(OutputDest::Stdout),
            Some(file) => Some(OutputDest::File(PathBuf::from(file))),
        },
        ExporterType::Image => {
            if dest.is_some() {
                return Err(fail(OutputProblem::DestNotSupported(exporter)));
            }
            None
        }
    };
    Ok(ExportEntry { exporter, attrs, destination })
}

/// Paths that name the process's standard output.
const STDOUT_NAMES: &[&str] = &["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];

/// Turns the output flags of a build into its exports, the way buildx does:
///
/// - `--push` sets `push=true` on every image output, or adds an image output
///   when there is none;
/// - `-t/--tag` values (validated, in order) become the `name=` of every
///   image, oci and docker output, replacing a `name=` given in `--output`;
/// - an image output that pushes needs a name.
///
/// Tags without any output export nothing, as with buildx: the result stays
/// in the daemon's cache. Then the destinations are checked on disk
/// (existing folders, symbolic links) and standard output against
/// `stdout_is_terminal`.
pub fn exports_from_flags(
    outputs: &[String],
    tags: &[String],
    push: bool,
    stdout_is_terminal: bool,
) -> Result<Vec<ExportEntry>, OutputError> {
    let mut entries = Vec::with_capacity(outputs.len() + 1);
    for value in outputs {
        entries.push((value.clone(), parse_output(value)?));
    }

    if push {
        let mut pushed = false;
        for (_, entry) in entries.iter_mut().filter(|(_, entry)| entry.exporter == ExporterType::Image) {
            entry.attrs.insert("push".to_owned(), "true".to_owned());
            pushed = true;
        }
        if !pushed {
            let entry = ExportEntry {
                exporter: ExporterType::Image,
                attrs: [("push".to_owned(), "true".to_owned())].into(),
                destination: None,
            };
            entries.push(("--push".to_owned(), entry));
        }
    }

    if !tags.is_empty() {
        for tag in tags {
            // buildx checks tags with distribution's `reference.Parse`.
            crate::llb::parse_reference_as_written(tag)
                .map_err(|problem| OutputError::Tag { value: tag.clone(), problem })?;
        }
        let names = tags.join(",");
        for (_, entry) in &mut entries {
            if matches!(entry.exporter, ExporterType::Image | ExporterType::Oci | ExporterType::Docker) {
                entry.attrs.insert("name".to_owned(), names.clone());
            }
        }
    }

    for (_, entry) in &entries {
        let named = entry.attrs.get("name").is_some_and(|name| !name.is_empty());
        if entry.exporter == ExporterType::Image && entry.pushes() && !named {
            return Err(OutputError::PushWithoutName);
        }
    }

    let mut stdout_taken = false;
    for (value, entry) in &entries {
        let fail = |problem| OutputError::Output { value: value.clone(), problem };
        match &entry.destination {
            Some(OutputDest::Stdout) => {
                if stdout_taken {
                    return Err(fail(OutputProblem::StdoutTwice));
                }
                stdout_taken = true;
                if stdout_is_terminal {
                    return Err(fail(OutputProblem::StdoutIsTerminal(entry.exporter)));
                }
            }
            Some(OutputDest::File(path)) => check_file_dest(value, path, entry.exporter)?,
            Some(OutputDest::Dir(path) | OutputDest::Layout(path)) => check_dir_dest(value, path)?,
            None => {}
        }
    }
    Ok(entries.into_iter().map(|(_, entry)| entry).collect())
}

/// A file destination must not be a folder or a symbolic link. Missing
/// folders above it are created when the build starts, as buildx creates
/// them (`os.MkdirAll` before the first byte); what must hold now is that
/// the nearest existing one is a folder.
fn check_file_dest(value: &str, path: &Path, exporter: ExporterType) -> Result<(), OutputError> {
    let fail = |problem| OutputError::Output { value: value.to_owned(), problem };
    let inspect = |path: &Path, source| OutputError::Inspect { value: value.to_owned(), path: path.to_owned(), source };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(fail(OutputProblem::DestIsSymlink(path.to_owned()))),
        Ok(meta) if meta.is_dir() => return Err(fail(OutputProblem::DestIsDir { path: path.to_owned(), exporter })),
        Ok(_) => {}
        // A file where a folder should be is reported by missing_parents.
        Err(err) if matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {}
        Err(err) => return Err(inspect(path, err)),
    }
    match missing_parents(path) {
        Ok(_) => Ok(()),
        Err(MissingParents::NotDir(blocker)) => {
            Err(fail(OutputProblem::ParentNotDir { path: path.to_owned(), blocker }))
        }
        Err(MissingParents::Inspect(at, err)) => Err(inspect(&at, err)),
    }
}

/// Why the folders above a file cannot be made.
#[derive(Debug)]
pub(crate) enum MissingParents {
    /// This path exists and is not a folder.
    NotDir(PathBuf),
    /// This path could not be inspected.
    Inspect(PathBuf, io::Error),
}

/// The folders above `path` that do not exist yet, outermost first, after
/// checking that the nearest existing one is a folder (so creating them can
/// work).
pub(crate) fn missing_parents(path: &Path) -> Result<Vec<PathBuf>, MissingParents> {
    let mut missing = Vec::new();
    let mut dir = super::sink::parent_dir(path).to_path_buf();
    loop {
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(MissingParents::NotDir(dir)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                missing.push(dir.clone());
                match dir.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => dir = parent.to_path_buf(),
                    _ => break,
                }
            }
            Err(err) => return Err(MissingParents::Inspect(dir, err)),
        }
    }
    missing.reverse();
    Ok(missing)
}

/// A folder destination may be missing (it is created) or a folder, or a
/// link to one (the user named it), but not a file.
fn check_dir_dest(value: &str, path: &Path) -> Result<(), OutputError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => {
            Err(OutputError::Output { value: value.to_owned(), problem: OutputProblem::DestNotDir(path.to_owned()) })
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        // A file where one of its folders should be.
        Err(err) if err.kind() == io::ErrorKind::NotADirectory => match missing_parents(path) {
            Err(MissingParents::NotDir(blocker)) => Err(OutputError::Output {
                value: value.to_owned(),
                problem: OutputProblem::ParentNotDir { path: path.to_owned(), blocker },
            }),
            _ => Err(OutputError::Inspect { value: value.to_owned(), path: path.to_owned(), source: err }),
        },
        Err(source) => Err(OutputError::Inspect { value: value.to_owned(), path: path.to_owned(), source }),
    }
}

/// Attributes the daemon would reject once the build has run: checked now.
/// Others pass through untouched (exporters keep unknown keys as metadata).
fn check_attrs(exporter: ExporterType, attrs: &BTreeMap<String, String>) -> Result<(), OutputProblem> {
    // Booleans where the daemon reads an empty value as true.
    const BOOL_OR_EMPTY: &[&str] = &[
        "push",
        "push-by-digest",
        "registry.insecure",
        "unpack",
        "store",
        "name-canonical",
        "force-compression",
        "tar",
    ];
    // Booleans parsed strictly.
    const BOOL: &[&str] =
        &["oci-mediatypes", "oci-artifact", "attestation-inline", "prefer-nondist-layers", "rewrite-timestamp"];
    for (key, value) in attrs {
        let key = key.as_str();
        let bool_ok = crate::gostrconv::parse_bool(value).is_some();
        if (BOOL_OR_EMPTY.contains(&key) && !(value.is_empty() || bool_ok)) || (BOOL.contains(&key) && !bool_ok) {
            return Err(OutputProblem::NotBool { key: key.to_owned(), value: value.clone() });
        }
        match key {
            "compression" if !matches!(value.as_str(), "uncompressed" | "gzip" | "estargz" | "zstd") => {
                return Err(OutputProblem::Compression(value.clone()));
            }
            "compression-level" if value.parse::<i64>().is_err() => {
                return Err(OutputProblem::NotInteger { key: key.to_owned(), value: value.clone() });
            }
            _ => {}
        }
    }
    if exporter == ExporterType::Local {
        if let Some(mode) = attrs.get("mode").filter(|mode| !mode.is_empty() && *mode != "copy") {
            return Err(OutputProblem::LocalMode(mode.clone()));
        }
    }
    Ok(())
}

/// Splits one CSV record into its fields (quotes as in RFC 4180, as buildx).
pub fn csv_fields(value: &str) -> Result<Vec<String>, OutputProblem> {
    if value.is_empty() {
        return Err(OutputProblem::Empty);
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(value.as_bytes());
    let mut records = reader.records();
    let first = match records.next() {
        None => return Err(OutputProblem::Empty),
        Some(Err(err)) => return Err(OutputProblem::Csv(err.to_string())),
        Some(Ok(record)) => record,
    };
    if records.next().is_some() {
        return Err(OutputProblem::MultipleLines);
    }
    Ok(first.iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn problem(value: &str) -> OutputProblem {
        match parse_output(value) {
            Err(OutputError::Output { value: got, problem }) => {
                assert_eq!(got, value, "the error names the flag's value");
                problem
            }
            other => panic!("expected an --output error for {value:?}, got {other:?}"),
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn bare_path_is_a_local_folder() {
        let entry = parse_output("out/dir").unwrap();
        assert_eq!(entry.exporter, ExporterType::Local);
        assert_eq!(entry.destination, Some(OutputDest::Dir("out/dir".into())));
        assert!(entry.attrs.is_empty());
    }

    #[test]
    fn dash_is_a_tarball_on_stdout() {
        let entry = parse_output("-").unwrap();
        assert_eq!(entry.exporter, ExporterType::Tar);
        assert_eq!(entry.destination, Some(OutputDest::Stdout));
    }

    #[test]
    fn file_outputs_take_dest_out_of_the_attrs() {
        for (value, exporter) in [
            ("type=tar,dest=out.tar", ExporterType::Tar),
            ("type=oci,dest=out.tar,name=reg/app:1", ExporterType::Oci),
            ("TYPE=docker,DEST=out.tar", ExporterType::Docker),
        ] {
            let entry = parse_output(value).unwrap();
            assert_eq!(entry.exporter, exporter, "{value}");
            assert_eq!(entry.destination, Some(OutputDest::File("out.tar".into())), "{value}");
            assert!(!entry.attrs.contains_key("dest"), "{value}");
        }
        assert_eq!(parse_output("type=oci,dest=o.tar,name=reg/app:1").unwrap().attrs, attrs(&[("name", "reg/app:1")]));
    }

    #[test]
    fn file_outputs_without_dest_go_to_stdout() {
        assert_eq!(parse_output("type=oci").unwrap().destination, Some(OutputDest::Stdout));
        assert_eq!(parse_output("type=docker,dest=-").unwrap().destination, Some(OutputDest::Stdout));
        // /dev/stdout is a link (to /proc/self/fd/1): it means standard
        // output, not a link to refuse.
        assert_eq!(parse_output("type=tar,dest=/dev/stdout").unwrap().destination, Some(OutputDest::Stdout));
        assert_eq!(parse_output("type=oci,dest=/proc/self/fd/1").unwrap().destination, Some(OutputDest::Stdout));
    }

    #[test]
    fn image_attrs_pass_through() {
        let entry = parse_output(
            "type=image,name=r/a:1,push=true,registry.insecure=true,compression=zstd,oci-mediatypes=true,rewrite-timestamp=true,annotation.org.x=y",
        )
        .unwrap();
        assert_eq!(entry.exporter, ExporterType::Image);
        assert_eq!(entry.destination, None);
        assert_eq!(
            entry.attrs,
            attrs(&[
                ("name", "r/a:1"),
                ("push", "true"),
                ("registry.insecure", "true"),
                ("compression", "zstd"),
                ("oci-mediatypes", "true"),
                ("rewrite-timestamp", "true"),
                ("annotation.org.x", "y"),
            ])
        );
    }

    #[test]
    fn registry_is_an_image_that_pushes() {
        let entry = parse_output("type=registry,name=r/a").unwrap();
        assert_eq!(entry.exporter, ExporterType::Image);
        assert_eq!(entry.attrs, attrs(&[("name", "r/a"), ("push", "true")]));
        // An explicit push= wins.
        assert_eq!(parse_output("type=registry,name=r/a,push=false").unwrap().attrs["push"], "false");
    }

    #[test]
    fn quoted_fields_keep_their_commas() {
        let entry = parse_output(r#"type=image,"name=r/a:1,r/a:2",push=true"#).unwrap();
        assert_eq!(entry.attrs["name"], "r/a:1,r/a:2");
        let entry = parse_output(r#"type=local,"dest=a,b""#).unwrap();
        assert_eq!(entry.destination, Some(OutputDest::Dir("a,b".into())));
    }

    #[test]
    fn malformed_values_name_the_problem() {
        assert_eq!(problem(""), OutputProblem::Empty);
        assert_eq!(problem("type=local,dest"), OutputProblem::NotKeyValue("dest".into()));
        assert_eq!(problem("type=tar,=x"), OutputProblem::EmptyKey("=x".into()));
        assert_eq!(problem("dest=out"), OutputProblem::MissingType);
        assert_eq!(problem("type=,dest=out"), OutputProblem::MissingType);
        assert_eq!(problem("type=zip,dest=out"), OutputProblem::UnknownType("zip".into()));
        assert_eq!(problem("type=tar,output=x.tar"), OutputProblem::OutputKey("x.tar".into()));
        assert_eq!(problem("type=local"), OutputProblem::MissingDir);
        assert_eq!(problem("type=local,dest=-"), OutputProblem::LocalToStdout);
        assert_eq!(problem("type=image,name=a,dest=x"), OutputProblem::DestNotSupported(ExporterType::Image));
        assert_eq!(problem("type=image,push=yes"), OutputProblem::NotBool { key: "push".into(), value: "yes".into() });
        assert_eq!(
            problem("type=oci,dest=x,oci-mediatypes="),
            OutputProblem::NotBool { key: "oci-mediatypes".into(), value: String::new() }
        );
        assert_eq!(problem("type=image,compression=lz4"), OutputProblem::Compression("lz4".into()));
        assert_eq!(
            problem("type=image,compression-level=high"),
            OutputProblem::NotInteger { key: "compression-level".into(), value: "high".into() }
        );
        assert_eq!(problem("type=oci,tar=false"), OutputProblem::LayoutFolder);
        assert_eq!(
            parse_output("type=oci,dest=d,tar=false").unwrap().destination,
            Some(OutputDest::Layout("d".into()))
        );
        assert_eq!(problem("type=local,dest=d,mode=delete"), OutputProblem::LocalMode("delete".into()));
        assert_eq!(problem("type=tar\ntype=oci"), OutputProblem::MultipleLines);
    }

    #[test]
    fn error_text_names_flag_value_and_problem() {
        let err = parse_output("type=zip,dest=out").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid --output "type=zip,dest=out": unknown output type "zip" (expected image, registry, local, tar, oci or docker)"#
        );
        let err = parse_output("type=local").unwrap_err();
        assert_eq!(err.to_string(), r#"invalid --output "type=local": type=local needs dest=<folder>"#);
    }

    #[test]
    fn empty_bool_means_true_where_the_daemon_says_so() {
        assert!(parse_output("type=image,name=a,push=").is_ok());
        assert!(parse_output("type=image,name=a,push=1").is_ok());
        assert!(parse_output("type=image,name=a,push=False").is_ok());
    }

    #[test]
    fn push_sets_push_on_image_outputs_or_adds_one() {
        let entries = exports_from_flags(&strings(&["type=image,name=r/a"]), &[], true, false).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].attrs["push"], "true");

        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out").display().to_string();
        let entries = exports_from_flags(&[out], &strings(&["r/a:1"]), true, false).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].exporter, ExporterType::Local);
        assert!(!entries[0].attrs.contains_key("name"), "tags name image outputs only");
        assert_eq!(entries[1].exporter, ExporterType::Image);
        assert_eq!(entries[1].attrs, attrs(&[("name", "r/a:1"), ("push", "true")]));
    }

    #[test]
    fn tags_name_image_oci_and_docker_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let oci = format!("type=oci,dest={}", dir.path().join("o.tar").display());
        let entries = exports_from_flags(
            &[oci, "type=image,name=old".into()],
            &strings(&["reg.local:5000/app:1", "app:latest"]),
            false,
            false,
        )
        .unwrap();
        assert_eq!(entries[0].attrs["name"], "reg.local:5000/app:1,app:latest");
        assert_eq!(entries[1].attrs["name"], "reg.local:5000/app:1,app:latest", "tags replace name=, as in buildx");
    }

    #[test]
    fn tags_alone_export_nothing() {
        assert!(exports_from_flags(&[], &strings(&["app:1"]), false, false).unwrap().is_empty());
    }

    #[test]
    fn push_needs_a_name() {
        let err = exports_from_flags(&[], &[], true, false).unwrap_err();
        assert!(matches!(err, OutputError::PushWithoutName));
        let err = exports_from_flags(&strings(&["type=registry"]), &[], false, false).unwrap_err();
        assert!(matches!(err, OutputError::PushWithoutName));
        assert!(exports_from_flags(&strings(&["type=image,push=false"]), &[], false, false).is_ok());
    }

    #[test]
    fn bad_tags_are_refused() {
        use crate::llb::ReferenceError;
        let long = format!("{}:1", "a".repeat(256));
        for (tag, expected) in [
            ("App:1", ReferenceError::NameUppercase),
            ("app:", ReferenceError::Format),
            ("a b", ReferenceError::Format),
            ("-app", ReferenceError::Format),
            ("app:1:2", ReferenceError::Format),
            // Go's `\w` is ASCII: buildx says "invalid reference format".
            ("app:tág", ReferenceError::Format),
            (&long, ReferenceError::TooLong),
        ] {
            match exports_from_flags(&[], &strings(&[tag]), true, false) {
                Err(OutputError::Tag { value, problem }) => {
                    assert_eq!(value, tag);
                    assert_eq!(problem, expected, "{tag}");
                }
                other => panic!("{tag}: expected a tag error, got {other:?}"),
            }
        }
        let err = exports_from_flags(&[], &strings(&["App"]), true, false).unwrap_err();
        assert_eq!(err.to_string(), r#"invalid --tag "App": repository name must be lowercase"#);
    }

    #[test]
    fn good_tags_are_accepted() {
        for tag in [
            "app",
            "library/app:1.0",
            "127.0.0.1:5000/busybox:latest",
            "localhost/a/b/c",
            "reg.example.com/team/app_x:v1-rc.2",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/app:1",
        ] {
            assert!(crate::llb::parse_reference_as_written(tag).is_ok(), "{tag}");
        }
    }

    #[test]
    fn stdout_is_refused_on_a_terminal_and_taken_once() {
        let err = exports_from_flags(&strings(&["-"]), &[], false, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid --output "-": standard output is a terminal; refusing to write the tar tarball to it (pass dest=FILE or redirect stdout)"#
        );
        assert!(exports_from_flags(&strings(&["type=oci,dest=-"]), &[], false, false).is_ok());
        let err = exports_from_flags(&strings(&["-", "type=oci"]), &[], false, false).unwrap_err();
        assert!(
            matches!(err, OutputError::Output { problem: OutputProblem::StdoutTwice, ref value } if value == "type=oci")
        );
    }

    #[test]
    fn file_destinations_are_checked_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.tar");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link.tar");
        std::os::unix::fs::symlink(&target, &link).unwrap();

        let check = |dest: &Path| {
            let value = format!("type=tar,dest={}", dest.display());
            exports_from_flags(&[value], &[], false, false).map_err(|err| match err {
                OutputError::Output { problem, .. } => problem,
                other => panic!("unexpected {other:?}"),
            })
        };
        assert!(check(&target).is_ok(), "an existing file is replaced");
        assert!(check(&dir.path().join("new.tar")).is_ok());
        assert_eq!(check(&link).unwrap_err(), OutputProblem::DestIsSymlink(link.clone()));
        assert_eq!(
            check(dir.path()).unwrap_err(),
            OutputProblem::DestIsDir { path: dir.path().to_owned(), exporter: ExporterType::Tar }
        );
        // Missing folders are created at the start of the build, as buildx does.
        assert!(check(&dir.path().join("missing/deeper/out.tar")).is_ok());
        let under_file = target.join("out.tar");
        assert_eq!(
            check(&under_file).unwrap_err(),
            OutputProblem::ParentNotDir { path: under_file.clone(), blocker: target.clone() }
        );
    }

    #[test]
    fn folder_destinations_are_checked_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let value = format!("type=local,dest={}", file.display());
        let err = exports_from_flags(&[value], &[], false, false).unwrap_err();
        assert!(matches!(err, OutputError::Output { problem: OutputProblem::DestNotDir(_), .. }));
        let value = format!("type=local,dest={}", dir.path().join("new").display());
        assert!(exports_from_flags(&[value], &[], false, false).is_ok());
        let value = format!("type=local,dest={}", file.join("sub").display());
        let err = exports_from_flags(&[value], &[], false, false).unwrap_err();
        assert!(matches!(err, OutputError::Output { problem: OutputProblem::ParentNotDir { .. }, .. }), "{err}");
    }
}
