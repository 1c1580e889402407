//! Build secrets (`--secret`, read by `RUN --mount=type=secret`) and the
//! session's `moby.buildkit.secrets.v1.Secrets` service that hands them to
//! the daemon.
//!
//! The syntax is buildx's: a CSV of `id=`, `type=file|env`, `src=`/`source=`
//! and `env=`. Without `type`, `src` means a file and `env` a variable; with
//! `type=env`, `src` names the variable. The id defaults to the file's base
//! name or the variable's name; a bare `id=X` takes the variable `X` when it
//! is set and the file `X` otherwise (as BuildKit's `secretsprovider`).
//!
//! Values are read when the flag is parsed, so a missing or oversized file
//! fails before anything is sent, and they never reach a log: [`SecretValue`]
//! prints as `<redacted>` and the service logs ids only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::proto::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use crate::proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};

/// The largest secret the daemon accepts (BuildKit's `MaxSecretSize`).
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// A `--secret` value that cannot be used. [`SecretError::value`] is the
/// flag's value; the message says what is wrong with it (callers name the
/// flag).
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct SecretError {
    value: String,
    problem: SecretProblem,
}

impl SecretError {
    /// The `--secret` value that was refused.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &SecretProblem {
        &self.problem
    }
}

/// What is wrong with one `--secret` value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretProblem {
    #[error("{0}")]
    Csv(crate::output::OutputProblem),
    #[error("field {0:?} is not a key=value pair")]
    NotKeyValue(String),
    #[error("unsupported secret type {0:?} (expected file or env)")]
    UnknownType(String),
    #[error("unexpected key {0:?} (expected id, type, src, source or env)")]
    UnknownKey(String),
    #[error("the secret needs an id, a src= file or an env= variable")]
    MissingId,
    #[error("give either src= or env=, not both")]
    FileAndEnv,
    // The io error is part of the message, not a source: callers fold this
    // error into one line of their own.
    #[error("cannot read secret file {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("secret file {} is larger than 500 KiB, the limit for secrets", path.display())]
    TooLarge { path: PathBuf },
}

/// A secret's bytes. Never printed. (Not wiped on drop: copies live on in
/// the gRPC layer's buffers anyway, so a wipe here would promise nothing.)
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    /// The secret's bytes, for the daemon only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret came from (for messages; never its content).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretOrigin {
    /// A file, read when the flag was parsed.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// One parsed `--secret`: its id, origin and value.
#[derive(Debug, Clone)]
pub struct SecretSource {
    /// The id a `RUN --mount=type=secret,id=...` asks for.
    pub id: String,
    /// Where the value was read from.
    pub origin: SecretOrigin,
    value: SecretValue,
}

impl SecretSource {
    /// Parses a `--secret` value, reading the file or variable now.
    pub fn parse(spec: &str) -> Result<SecretSource, SecretError> {
        SecretSource::parse_with_env(spec, |name| std::env::var_os(name).map(|v| v.into_encoded_bytes()))
    }

    /// [`SecretSource::parse`] with the environment given (tests must not
    /// change the process environment: they run in parallel).
    pub fn parse_with_env(spec: &str, env: impl Fn(&str) -> Option<Vec<u8>>) -> Result<SecretSource, SecretError> {
        let fail = |problem| SecretError { value: spec.to_owned(), problem };
        let fields = crate::output::csv_fields(spec).map_err(|problem| fail(SecretProblem::Csv(problem)))?;
        let (mut id, mut kind, mut src, mut env_name) = (None, None, None, None);
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(fail(SecretProblem::NotKeyValue(field)));
            };
            let value = value.to_owned();
            match key.to_ascii_lowercase().as_str() {
                "type" if value == "file" || value == "env" => kind = Some(value),
                "type" => return Err(fail(SecretProblem::UnknownType(value))),
                "id" => id = Some(value),
                "src" | "source" => src = Some(value),
                "env" => env_name = Some(value),
                other => return Err(fail(SecretProblem::UnknownKey(other.to_owned()))),
            }
        }
        let nonempty = |value: Option<String>| value.filter(|v| !v.is_empty());
        let (id, mut src, mut env_name) = (nonempty(id), nonempty(src), nonempty(env_name));
        if kind.as_deref() == Some("env") && env_name.is_none() {
            env_name = src.take();
        }
        let origin = match (src, env_name, &id) {
            (Some(_), Some(_), _) => return Err(fail(SecretProblem::FileAndEnv)),
            (Some(path), None, _) => SecretOrigin::File(PathBuf::from(path)),
            (None, Some(name), _) => SecretOrigin::Env(name),
            (None, None, Some(id)) => match kind.as_deref() {
                Some("file") => SecretOrigin::File(PathBuf::from(id)),
                Some("env") => SecretOrigin::Env(id.clone()),
                _ if env(id).is_some() => SecretOrigin::Env(id.clone()),
                _ => SecretOrigin::File(PathBuf::from(id)),
            },
            (None, None, None) => return Err(fail(SecretProblem::MissingId)),
        };
        let id = match (id, &origin) {
            (Some(id), _) => id,
            (None, SecretOrigin::Env(name)) => name.clone(),
            (None, SecretOrigin::File(path)) => path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .ok_or_else(|| fail(SecretProblem::MissingId))?,
        };
        let value = match &origin {
            SecretOrigin::File(path) => read_secret_file(path).map_err(fail)?,
            // An unset variable is an empty secret, as in buildctl and buildx.
            SecretOrigin::Env(name) => env(name).unwrap_or_else(|| {
                tracing::warn!(
                    secret = id.as_str(),
                    variable = name.as_str(),
                    "secret variable is not set; the secret is empty"
                );
                Vec::new()
            }),
        };
        Ok(SecretSource { id, origin, value: SecretValue(value) })
    }

    /// The secret's value (redacted in `Debug`).
    pub fn value(&self) -> &SecretValue {
        &self.value
    }
}

fn read_secret_file(path: &Path) -> Result<Vec<u8>, SecretProblem> {
    use std::io::Read;
    let read = |error| SecretProblem::Read { path: path.to_owned(), error };
    let too_large = || SecretProblem::TooLarge { path: path.to_owned() };
    let file = std::fs::File::open(path).map_err(read)?;
    // The size in the metadata is only a hint (0 for a FIFO or /dev/zero,
    // and a file may grow): the read itself is bounded.
    if file.metadata().map_err(read)?.len() > MAX_SECRET_SIZE {
        return Err(too_large());
    }
    let mut data = Vec::new();
    file.take(MAX_SECRET_SIZE + 1).read_to_end(&mut data).map_err(read)?;
    if data.len() as u64 > MAX_SECRET_SIZE {
        return Err(too_large());
    }
    Ok(data)
}

/// The session's Secrets service. A later `--secret` with the same id
/// replaces an earlier one.
#[derive(Clone, Debug, Default)]
pub struct SecretsService {
    secrets: Arc<BTreeMap<String, SecretValue>>,
}

impl SecretsService {
    /// A service answering with `sources`.
    pub fn new(sources: &[SecretSource]) -> SecretsService {
        let secrets = sources.iter().map(|source| (source.id.clone(), source.value.clone())).collect();
        SecretsService { secrets: Arc::new(secrets) }
    }

    /// The tonic server, with the session's message limits.
    pub fn into_server(self) -> SecretsServer<SecretsService> {
        SecretsServer::new(self)
            .max_decoding_message_size(crate::session::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(crate::session::MAX_MESSAGE_SIZE)
    }

    /// The full gRPC method names this service serves.
    pub fn methods() -> &'static [&'static str] {
        &["/moby.buildkit.secrets.v1.Secrets/GetSecret"]
    }
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        request: tonic::Request<GetSecretRequest>,
    ) -> Result<tonic::Response<GetSecretResponse>, tonic::Status> {
        let id = &request.get_ref().id;
        match self.secrets.get(id) {
            Some(value) => {
                tracing::debug!(id = id.as_str(), "sending a secret");
                Ok(tonic::Response::new(GetSecretResponse { data: value.expose().to_vec().into() }))
            }
            // NotFound is what the daemon turns into "secret not found", or
            // skips for a mount with required=false.
            None => Err(tonic::Status::not_found(format!("secret {id} not found"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<Vec<u8>> {
        None
    }

    fn env_with(name: &'static str, value: &'static str) -> impl Fn(&str) -> Option<Vec<u8>> {
        move |key| (key == name).then(|| value.as_bytes().to_vec())
    }

    fn secret_file(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.txt");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn file_secret_with_id() {
        let (_dir, path) = secret_file(b"s3cr3t");
        let source = SecretSource::parse_with_env(&format!("id=tok,src={}", path.display()), no_env).unwrap();
        assert_eq!(source.id, "tok");
        assert_eq!(source.origin, SecretOrigin::File(path.clone()));
        assert_eq!(source.value().expose(), b"s3cr3t");
        // `source=` and `type=file` say the same.
        let source =
            SecretSource::parse_with_env(&format!("type=file,id=tok,source={}", path.display()), no_env).unwrap();
        assert_eq!(source.value().expose(), b"s3cr3t");
    }

    #[test]
    fn id_defaults_to_the_file_name_or_variable() {
        let (_dir, path) = secret_file(b"x");
        let source = SecretSource::parse_with_env(&format!("src={}", path.display()), no_env).unwrap();
        assert_eq!(source.id, "token.txt");
        let source = SecretSource::parse_with_env("env=API_TOKEN", env_with("API_TOKEN", "abc")).unwrap();
        assert_eq!(source.id, "API_TOKEN");
        assert_eq!(source.value().expose(), b"abc");
    }

    #[test]
    fn env_secrets() {
        let env = env_with("GH", "ghp_x");
        let source = SecretSource::parse_with_env("id=gh,env=GH", &env).unwrap();
        assert_eq!((source.id.as_str(), source.value().expose()), ("gh", &b"ghp_x"[..]));
        // type=env reads src= as the variable's name, as buildx does.
        let source = SecretSource::parse_with_env("type=env,id=gh,src=GH", &env).unwrap();
        assert_eq!(source.origin, SecretOrigin::Env("GH".into()));
        assert_eq!(source.value().expose(), b"ghp_x");
        // An unset variable is an empty secret.
        let source = SecretSource::parse_with_env("id=x,env=UNSET_VAR", no_env).unwrap();
        assert!(source.value().expose().is_empty());
    }

    #[test]
    fn bare_id_prefers_a_set_variable_then_a_file() {
        let source = SecretSource::parse_with_env("id=GH", env_with("GH", "v")).unwrap();
        assert_eq!(source.origin, SecretOrigin::Env("GH".into()));
        let (_dir, path) = secret_file(b"file content");
        let source = SecretSource::parse_with_env(&format!("id={}", path.display()), no_env).unwrap();
        assert_eq!(source.origin, SecretOrigin::File(path));
        assert_eq!(source.value().expose(), b"file content");
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("id=x,src=/nonexistent/fbuild-secret", "cannot read secret file /nonexistent/fbuild-secret: "),
            ("id=x,type=vault", r#"unsupported secret type "vault" (expected file or env)"#),
            ("id=x,path=/a", r#"unexpected key "path" (expected id, type, src, source or env)"#),
            ("id=x,src", r#"field "src" is not a key=value pair"#),
            ("type=file", "the secret needs an id, a src= file or an env= variable"),
            ("id=x,src=/a,env=B", "give either src= or env=, not both"),
            ("", "the value is empty"),
        ];
        for (spec, expected) in cases {
            let err = SecretSource::parse_with_env(spec, no_env).unwrap_err();
            assert_eq!(err.value(), *spec);
            assert!(err.to_string().starts_with(expected), "{spec}: {err}");
        }
    }

    #[test]
    fn oversized_files_are_refused() {
        let (_dir, path) = secret_file(&vec![b'a'; MAX_SECRET_SIZE as usize + 1]);
        let err = SecretSource::parse_with_env(&format!("id=big,src={}", path.display()), no_env).unwrap_err();
        assert!(matches!(err.problem(), SecretProblem::TooLarge { .. }));
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        let (_dir, path) = secret_file(&vec![b'a'; MAX_SECRET_SIZE as usize]);
        assert!(SecretSource::parse_with_env(&format!("id=big,src={}", path.display()), no_env).is_ok());
    }

    /// Files whose metadata says nothing of their size: the read stops
    /// after the limit (it read until memory ran out).
    #[test]
    fn endless_files_are_refused_after_the_limit() {
        let err = SecretSource::parse_with_env("id=zero,src=/dev/zero", no_env).unwrap_err();
        assert!(matches!(err.problem(), SecretProblem::TooLarge { .. }), "{err}");
        assert_eq!(err.to_string(), "secret file /dev/zero is larger than 500 KiB, the limit for secrets");

        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let writer = {
            let fifo = fifo.clone();
            // Writes until the reader goes away (EPIPE), 64 MiB at most.
            std::thread::spawn(move || {
                use std::io::Write;
                let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                let chunk = vec![b'x'; 64 * 1024];
                (0..1024).take_while(|_| pipe.write_all(&chunk).is_ok()).count()
            })
        };
        let err = SecretSource::parse_with_env(&format!("id=fifo,src={}", fifo.display()), no_env).unwrap_err();
        assert!(matches!(err.problem(), SecretProblem::TooLarge { .. }), "{err}");
        drop(err);
        let chunks_written = writer.join().unwrap();
        assert!(chunks_written < 1024, "the reader took all {chunks_written} chunks");
    }

    #[test]
    fn values_never_show_in_debug_output() {
        let (_dir, path) = secret_file(b"hunter2-file");
        let file = SecretSource::parse_with_env(&format!("id=f,src={}", path.display()), no_env).unwrap();
        let env = SecretSource::parse_with_env("id=e,env=PW", env_with("PW", "hunter2-env")).unwrap();
        let service = SecretsService::new(&[file.clone(), env.clone()]);
        for text in [format!("{file:?}"), format!("{env:?}"), format!("{service:?}"), format!("{:#?}", [&file, &env])] {
            assert!(!text.contains("hunter2"), "leaked: {text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
    }

    #[tokio::test]
    async fn service_returns_bytes_or_not_found() {
        let env = env_with("PW", "value-1");
        let sources = [
            SecretSource::parse_with_env("id=a,env=PW", &env).unwrap(),
            SecretSource::parse_with_env("id=b,env=PW", &env).unwrap(),
        ];
        let service = SecretsService::new(&sources);
        let request = |id: &str| tonic::Request::new(GetSecretRequest { id: id.into(), ..Default::default() });
        let found = service.get_secret(request("b")).await.unwrap().into_inner();
        assert_eq!(&found.data[..], b"value-1");
        let missing = service.get_secret(request("nope")).await.unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        assert!(!missing.message().contains("value-1"));
    }

    #[test]
    fn later_ids_replace_earlier_ones() {
        let sources = [
            SecretSource::parse_with_env("id=a,env=X", env_with("X", "first")).unwrap(),
            SecretSource::parse_with_env("id=a,env=X", env_with("X", "second")).unwrap(),
        ];
        let service = SecretsService::new(&sources);
        assert_eq!(service.secrets["a"].expose(), b"second");
    }
}
