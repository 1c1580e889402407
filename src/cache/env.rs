//! Cache backends' credentials from the CI environment, as buildx adds them
//! before the solve (`CreateCaches` in buildx v0.38.2's `build/opt.go`).
//!
//! The environment is passed in as a lookup function, so the library never
//! reads the process environment itself and tests give it a map.
//!
//! - `type=gha`: `token` from `ACTIONS_RUNTIME_TOKEN`; `url` from
//!   `ACTIONS_CACHE_URL`, else `ACTIONS_RESULTS_URL`; with cache service v2
//!   (`version=2`, or `ACTIONS_CACHE_SERVICE_V2` true) also `url_v2` from
//!   `ACTIONS_RESULTS_URL`. An entry that still has no token or no URL is
//!   dropped, as buildx drops it: the same command then runs outside GitHub.
//! - `type=s3`: `access_key_id`, `secret_access_key`, `session_token` from
//!   the AWS variables or the shared credentials file (the static-key part of
//!   the AWS SDK's default chain). fbuild also sets `region` from
//!   `AWS_REGION`: buildx leaves it to the daemon's own environment, which in
//!   CI is usually a container that does not have it.
//! - `type=azblob`: nothing. buildx adds nothing either; BuildKit reads
//!   `BUILDKIT_AZURE_STORAGE_*` and Azure's credential chain in the daemon.
//!
//! Values given in the option win over the environment. What comes from the
//! environment is added to the entry the daemon receives only: never to what
//! `bake --print` shows, and [`CacheEntry`]'s `Debug` hides every secret.

use super::CacheEntry;

/// A lookup in the environment: `None` when the variable is unset.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Attributes whose values are credentials: never printed.
pub(crate) const SECRET_ATTRS: &[&str] = &["token", "ghtoken", "access_key_id", "secret_access_key", "session_token"];

impl CacheEntry {
    /// The entry as buildx sends it: credentials and URLs the option leaves
    /// out are taken from `env`. `None` for a `type=gha` entry that has no
    /// token or no URL even then (buildx skips it).
    pub fn with_ci_env(mut self, env: EnvLookup<'_>) -> Option<CacheEntry> {
        match self.kind.as_str() {
            "gha" => {
                add_github_token(&mut self, env);
                let has = |key: &str| self.attrs.get(key).is_some_and(|v| !v.is_empty());
                if !(has("token") && (has("url") || has("url_v2"))) {
                    return None;
                }
            }
            "s3" => add_aws_credentials(&mut self, env),
            _ => {}
        }
        Some(self)
    }
}

fn add_github_token(entry: &mut CacheEntry, env: EnvLookup<'_>) {
    let attrs = &mut entry.attrs;
    // actions/toolkit's cache config: the v2 service is chosen by this variable.
    let version = attrs.get("version").cloned().or_else(|| {
        env("ACTIONS_CACHE_SERVICE_V2")
            .and_then(|v| crate::gostrconv::parse_bool(&v))
            .filter(|&v2| v2)
            .map(|_| "2".to_string())
    });
    if !attrs.contains_key("token") {
        if let Some(token) = env("ACTIONS_RUNTIME_TOKEN") {
            attrs.insert("token".into(), token);
        }
    }
    if !attrs.contains_key("url_v2") && version.as_deref() == Some("2") {
        if let Some(url) = env("ACTIONS_RESULTS_URL") {
            attrs.insert("url_v2".into(), url);
        }
    }
    if !attrs.contains_key("url") {
        if let Some(url) = env("ACTIONS_CACHE_URL").or_else(|| env("ACTIONS_RESULTS_URL")) {
            attrs.insert("url".into(), url);
        }
    }
}

fn add_aws_credentials(entry: &mut CacheEntry, env: EnvLookup<'_>) {
    let attrs = &mut entry.attrs;
    if !attrs.contains_key("region") {
        if let Some(region) = env("AWS_REGION").filter(|r| !r.is_empty()) {
            attrs.insert("region".into(), region);
        }
    }
    let has_id = attrs.contains_key("access_key_id");
    let has_secret = attrs.contains_key("secret_access_key");
    // Both keys given: the option is complete, its session token included.
    if has_id && has_secret {
        return;
    }
    let Some(credentials) = aws_credentials(env) else {
        return;
    };
    if !has_id {
        attrs.insert("access_key_id".into(), credentials.access_key_id);
    }
    if !has_secret {
        attrs.insert("secret_access_key".into(), credentials.secret_access_key);
    }
    if let Some(token) = credentials.session_token.filter(|t| !t.is_empty()) {
        attrs.entry("session_token".into()).or_insert(token);
    }
}

struct AwsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// The AWS SDK's static credentials: the environment first (with the SDK's
/// older names), then the profile in the shared credentials file.
fn aws_credentials(env: EnvLookup<'_>) -> Option<AwsCredentials> {
    let nonempty = |key: &str| env(key).filter(|v| !v.is_empty());
    let id = nonempty("AWS_ACCESS_KEY_ID").or_else(|| nonempty("AWS_ACCESS_KEY"));
    let secret = nonempty("AWS_SECRET_ACCESS_KEY").or_else(|| nonempty("AWS_SECRET_KEY"));
    if let (Some(access_key_id), Some(secret_access_key)) = (id, secret) {
        return Some(AwsCredentials { access_key_id, secret_access_key, session_token: nonempty("AWS_SESSION_TOKEN") });
    }
    let file = nonempty("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| nonempty("HOME").map(|home| std::path::Path::new(&home).join(".aws/credentials")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let profile = nonempty("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let mut values = shared_credentials_profile(&text, &profile);
    let access_key_id = values.remove("aws_access_key_id").filter(|v| !v.is_empty())?;
    let secret_access_key = values.remove("aws_secret_access_key").filter(|v| !v.is_empty())?;
    Some(AwsCredentials { access_key_id, secret_access_key, session_token: values.remove("aws_session_token") })
}

/// The keys of one `[profile]` section of an INI credentials file.
fn shared_credentials_profile(text: &str, profile: &str) -> std::collections::BTreeMap<String, String> {
    let mut values = std::collections::BTreeMap::new();
    let mut in_profile = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
        } else if in_profile {
            if let Some((key, value)) = line.split_once('=') {
                values.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cache::CacheDirection;

    fn entry(spec: &str, vars: &[(&str, &str)]) -> Option<CacheEntry> {
        let env: BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CacheEntry::parse(spec, CacheDirection::Export).unwrap().with_ci_env(&|key| env.get(key).cloned())
    }

    fn attrs(entry: &CacheEntry) -> Vec<(&str, &str)> {
        entry.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn gha_takes_token_and_urls_as_buildx() {
        let github = [("ACTIONS_RUNTIME_TOKEN", "tok"), ("ACTIONS_CACHE_URL", "https://cache/")];
        let e = entry("type=gha,mode=max", &github).unwrap();
        assert_eq!(attrs(&e), [("mode", "max"), ("token", "tok"), ("url", "https://cache/")]);
        // The option's own values win.
        let e = entry("type=gha,token=mine,url=https://other/", &github).unwrap();
        assert_eq!(attrs(&e), [("token", "mine"), ("url", "https://other/")]);
        // Without ACTIONS_CACHE_URL the results URL is the URL.
        let e =
            entry("type=gha", &[("ACTIONS_RUNTIME_TOKEN", "tok"), ("ACTIONS_RESULTS_URL", "https://res/")]).unwrap();
        assert_eq!(attrs(&e), [("token", "tok"), ("url", "https://res/")]);
        // Cache service v2: url_v2 from the results URL, by variable or by attribute.
        let v2 = [
            ("ACTIONS_RUNTIME_TOKEN", "tok"),
            ("ACTIONS_CACHE_URL", "https://cache/"),
            ("ACTIONS_RESULTS_URL", "https://res/"),
            ("ACTIONS_CACHE_SERVICE_V2", "True"),
        ];
        let e = entry("type=gha", &v2).unwrap();
        assert_eq!(attrs(&e), [("token", "tok"), ("url", "https://cache/"), ("url_v2", "https://res/")]);
        let e = entry("type=gha,version=1", &v2).unwrap();
        assert_eq!(attrs(&e), [("token", "tok"), ("url", "https://cache/"), ("version", "1")]);
        let e = entry("type=gha,version=2", &v2[..3]).unwrap();
        assert_eq!(e.attrs["url_v2"], "https://res/");
        // Not Go's boolean: v1.
        assert!(!entry("type=gha", &[v2[0], v2[1], v2[2], ("ACTIONS_CACHE_SERVICE_V2", "yes")])
            .unwrap()
            .attrs
            .contains_key("url_v2"));
    }

    #[test]
    fn gha_without_token_or_url_is_skipped() {
        assert_eq!(entry("type=gha", &[]), None);
        assert_eq!(entry("type=gha", &[("ACTIONS_RUNTIME_TOKEN", "tok")]), None);
        assert_eq!(entry("type=gha", &[("ACTIONS_CACHE_URL", "https://c/")]), None);
        assert_eq!(entry("type=gha,token=", &[("ACTIONS_CACHE_URL", "https://c/")]), None);
        assert!(entry("type=gha,token=t,url=u", &[]).is_some());
        // Other types are never skipped and never touched.
        let e = entry("type=registry,ref=r/a:c", &[("ACTIONS_RUNTIME_TOKEN", "tok")]).unwrap();
        assert_eq!(attrs(&e), [("ref", "r/a:c")]);
        let e = entry("type=azblob,name=x", &[("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "s")]).unwrap();
        assert_eq!(attrs(&e), [("name", "x")]);
    }

    #[test]
    fn s3_takes_aws_credentials_and_region() {
        let aws = [
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "session"),
            ("AWS_REGION", "eu-west-1"),
        ];
        let e = entry("type=s3,bucket=b", &aws).unwrap();
        assert_eq!(
            attrs(&e),
            [
                ("access_key_id", "id"),
                ("bucket", "b"),
                ("region", "eu-west-1"),
                ("secret_access_key", "secret"),
                ("session_token", "session")
            ]
        );
        // Both keys given: nothing of the environment's credentials, no session token.
        let e = entry("type=s3,bucket=b,region=us-east-1,access_key_id=a,secret_access_key=b", &aws).unwrap();
        assert_eq!(e.attrs.get("session_token"), None);
        assert_eq!(e.attrs["region"], "us-east-1");
        assert_eq!(e.attrs["access_key_id"], "a");
        // One key given: the other comes from the environment.
        let e = entry("type=s3,bucket=b,access_key_id=a", &aws).unwrap();
        assert_eq!((e.attrs["access_key_id"].as_str(), e.attrs["secret_access_key"].as_str()), ("a", "secret"));
        // The SDK wants both keys from the environment, or neither.
        let e = entry("type=s3,bucket=b", &[("AWS_ACCESS_KEY_ID", "id")]).unwrap();
        assert_eq!(attrs(&e), [("bucket", "b")]);
    }

    #[test]
    fn s3_reads_the_shared_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = d-id\naws_secret_access_key = d-secret\n\n\
             [ci]\n# comment\naws_access_key_id=ci-id\naws_secret_access_key=ci-secret\naws_session_token=ci-tok\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let e = entry("type=s3,bucket=b", &[("AWS_SHARED_CREDENTIALS_FILE", file)]).unwrap();
        assert_eq!((e.attrs["access_key_id"].as_str(), e.attrs.get("session_token")), ("d-id", None));
        let e = entry("type=s3,bucket=b", &[("AWS_SHARED_CREDENTIALS_FILE", file), ("AWS_PROFILE", "ci")]).unwrap();
        assert_eq!(e.attrs["session_token"], "ci-tok");
        assert_eq!(e.attrs["secret_access_key"], "ci-secret");
        // The environment comes first.
        let e = entry(
            "type=s3,bucket=b",
            &[("AWS_SHARED_CREDENTIALS_FILE", file), ("AWS_ACCESS_KEY_ID", "e"), ("AWS_SECRET_ACCESS_KEY", "s")],
        )
        .unwrap();
        assert_eq!(e.attrs["access_key_id"], "e");
    }

    #[test]
    fn debug_hides_credentials() {
        let e = entry(
            "type=s3,bucket=b",
            &[("AWS_ACCESS_KEY_ID", "the-id"), ("AWS_SECRET_ACCESS_KEY", "the-secret"), ("AWS_SESSION_TOKEN", "st")],
        )
        .unwrap();
        let shown = format!("{e:?}");
        for secret in ["the-id", "the-secret", "\"st\""] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("bucket") && shown.contains("access_key_id"), "{shown}");
    }
}
