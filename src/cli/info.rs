//! `fbuild info`: the daemon's version (like `buildctl debug info`).
//!
//! The JSON form has the shape of `buildctl debug info --format '{{json .}}'`,
//! so scripts written for one work with the other.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::table::{self, Fields};
use crate::cli::{Context, Format};
use crate::control::Control;
use crate::proto::moby::buildkit::v1::types::BuildkitVersion;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let control = Control::new(ctx.connect().await?.channel);
    let version = control.info().await?;
    let mut out = ctx.printer.stdout();
    match args.format {
        Format::Table => render(&version, &mut out)?,
        Format::Json => write_json(&version, &mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn render(version: &BuildkitVersion, out: &mut dyn Write) -> std::io::Result<()> {
    let mut fields = Fields::new();
    version_fields(version, &mut fields);
    fields.write_to(out)
}

/// `BuildKit: <package> <version> <revision>`, then the Dockerfile frontend's
/// version when the daemon has one built in (also in `fbuild workers -v`).
pub(crate) fn version_fields(version: &BuildkitVersion, fields: &mut Fields) {
    let buildkit = [&version.package, &version.version, &version.revision]
        .iter()
        .filter(|part| !part.is_empty())
        .map(|part| part.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    fields.field("BuildKit", buildkit);
    if !version.dockerfile_version.is_empty() {
        fields.field("Dockerfile", &version.dockerfile_version);
    }
}

/// buildctl's `client.BuildkitVersion` as JSON, fields in its order.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionJson<'a> {
    package: &'a str,
    version: &'a str,
    revision: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    dockerfile_version: &'a str,
}

impl<'a> From<&'a BuildkitVersion> for VersionJson<'a> {
    fn from(version: &'a BuildkitVersion) -> Self {
        Self {
            package: &version.package,
            version: &version.version,
            revision: &version.revision,
            dockerfile_version: &version.dockerfile_version,
        }
    }
}

fn write_json(version: &BuildkitVersion, out: &mut dyn Write) -> std::io::Result<()> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct InfoJson<'a> {
        buildkit_version: VersionJson<'a>,
    }
    table::write_json(out, &InfoJson { buildkit_version: version.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon_version() -> BuildkitVersion {
        BuildkitVersion {
            package: "github.com/moby/buildkit".into(),
            version: "v0.32.2".into(),
            revision: String::new(),
            dockerfile_version: "1.26.0".into(),
        }
    }

    #[test]
    fn renders_like_buildctl_debug_info() {
        let mut out = Vec::new();
        render(&daemon_version(), &mut out).unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap(), @r"
        BuildKit:   github.com/moby/buildkit v0.32.2
        Dockerfile: 1.26.0
        ");
    }

    #[test]
    fn json_matches_buildctl_shape() {
        // The exact bytes `buildctl debug info --format '{{json .}}'` printed
        // against buildkitd v0.32.2.
        let buildctl = r#"{"buildkitVersion":{"package":"github.com/moby/buildkit","version":"v0.32.2","revision":"","dockerfileVersion":"1.26.0"}}"#;
        let json = |version: &BuildkitVersion| {
            let mut out = Vec::new();
            write_json(version, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(json(&daemon_version()), format!("{buildctl}\n"));

        let without_frontend = BuildkitVersion { dockerfile_version: String::new(), ..daemon_version() };
        assert!(!json(&without_frontend).contains("dockerfileVersion"));
    }
}
