//! Unit tests of the linter's pieces; the findings themselves are pinned
//! against the daemon's in `tests/lint.rs`.

use std::collections::BTreeMap;

use super::*;

fn findings(dockerfile: &str) -> Vec<(String, String, i32)> {
    let config = r#"{"os":"linux","architecture":"amd64","config":{"Env":["PATH=/bin"]}}"#;
    let images = BTreeMap::from([("busybox".to_string(), config.to_string())]);
    let json = lint_json(dockerfile, &BTreeMap::new(), None, &images);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .map(|w| {
                    (
                        w["ruleName"].as_str().unwrap().to_string(),
                        w["detail"].as_str().unwrap().to_string(),
                        w["location"]["ranges"][0]["start"]["line"].as_i64().unwrap() as i32,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn check_options_parse_as_the_frontend_does() {
    let config = CheckConfig::parse("skip=A, B;error=true").unwrap();
    assert_eq!(config.skip, vec!["A", "B"]);
    assert!(config.error);
    assert!(CheckConfig::parse("skip=all").unwrap().skip_all);
    assert_eq!(CheckConfig::parse("nope").unwrap_err().to_string(), "invalid check option \"nope\"");
    assert_eq!(CheckConfig::parse("x=1").unwrap_err(), CheckConfigError::InvalidOption("x".into()));
    assert_eq!(
        CheckConfig::parse("error=maybe").unwrap_err().to_string(),
        "failed to parse check option \"error=maybe\": strconv.ParseBool: parsing \"maybe\": invalid syntax"
    );
}

#[test]
fn rules_fire_with_the_daemons_words_and_lines() {
    let found = findings("FROM busybox AS Foo\nmaintainer me\nENV A b\nCMD echo $X\nCMD [\"a\"]\n");
    assert_eq!(found[0], ("StageNameCasing".into(), "Stage name 'Foo' should be lowercase".into(), 1));
    assert!(found.contains(&(
        "MaintainerDeprecated".into(),
        "Maintainer instruction is deprecated in favor of using label".into(),
        2
    )));
    assert!(found.contains(&(
        "LegacyKeyValueFormat".into(),
        "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format".into(),
        3
    )));
    assert!(found.contains(&(
        "MultipleInstructionsDisallowed".into(),
        "Multiple CMD instructions should not be used in the same stage because only the last one will be used".into(),
        4
    )));
}

#[test]
fn a_skip_comment_above_an_instruction_silences_it() {
    let found = findings("FROM scratch\n# check=skip=JSONArgsRecommended\nCMD echo hi\n");
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn undefined_variables_suggest_a_close_name() {
    let found = findings("FROM scratch\nENV FOO=1\nCOPY $FOOO /x\n");
    assert_eq!(
        found,
        vec![("UndefinedVar".into(), "Usage of undefined variable '$FOOO' (did you mean $FOO?)".into(), 3)]
    );
}

#[test]
fn references_are_checked_with_distributions_grammar() {
    assert!(check_reference("busybox"));
    assert!(check_reference("127.0.0.1:5555/busybox:latest"));
    assert!(!check_reference(""));
    assert!(!check_reference("Busybox"));
    assert!(!check_reference(":tag"));
}

fn check_reference(name: &str) -> bool {
    let json = lint_json(&format!("ARG B={name}\nFROM ${{B}}\n"), &BTreeMap::new(), None, &BTreeMap::new());
    !json.contains("InvalidDefaultArgInFrom")
}

/// Dockerfile-shaped text the rules branch on: keywords in both cases,
/// flags, variables, `check=` comments, continuations, heredocs.
fn lintable_text() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::string::string_regex(
        r#"(FROM |from |RUN |COPY |ADD |ENV |ARG |LABEL |ONBUILD |HEALTHCHECK |CMD |cmd |ENTRYPOINT |WORKDIR |EXPOSE |SHELL |STOPSIGNAL |MAINTAINER |USER |VOLUME |# check=skip=all|# check=error=true;experimental=all|# check=x|# escape=`|--mount=from=|--from=|--platform=| AS | as |<<EOF|EOF|scratch|busybox|\|`|
|	| |"|'|\[|\]|,|=|\$|\{|\}|:-|#|a|B|/|0|80/TCP|1:2:3){0,48}"#,
    )
    .expect("regex")
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..Default::default()
    })]

    /// The linter takes any Dockerfile-shaped text and ends in findings or
    /// a build error, never a panic.
    #[test]
    fn the_linter_never_panics(text in lintable_text()) {
        let config = r#"{"os":"linux","architecture":"amd64","config":{"Env":["PATH=/bin"],"Shell":["/bin/sh"]}}"#;
        let images = BTreeMap::from([("busybox".to_string(), config.to_string())]);
        let json = lint_json(&text, &BTreeMap::new(), Some("*\n!a\n"), &images);
        proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
    }
}

#[test]
fn an_images_onbuild_triggers_run_at_the_stages_from() {
    let config = r#"{"os":"linux","architecture":"amd64","config":{"OnBuild":["COPY $NOPE /x","ENV A b"]}}"#;
    let images = BTreeMap::from([("withtriggers".to_string(), config.to_string())]);
    let json = lint_json("FROM scratch\nRUN true\nFROM withtriggers\nRUN true\n", &BTreeMap::new(), None, &images);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let found: Vec<(&str, i64)> = value["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["ruleName"].as_str().unwrap(), w["location"]["ranges"][0]["start"]["line"].as_i64().unwrap()))
        .collect();
    assert_eq!(found, vec![("UndefinedVar", 3), ("LegacyKeyValueFormat", 3)]);
}

#[test]
fn error_true_turns_findings_into_a_violation() {
    let resolve = |_: &str, _: &str| Ok(BaseImage::default());
    let run = |text: &str| {
        lint(&LintInput {
            dockerfile: text,
            filename: "Dockerfile",
            build_args: &BTreeMap::new(),
            target: None,
            all_stages: true,
            platform: "linux/amd64",
            build_platforms: &[],
            implicit_platform: true,
            check: None,
            dockerignore: None,
            base_image: &resolve,
        })
    };
    let failing = run("# check=error=true\nFROM scratch AS a\nFROM scratch AS a\n");
    assert_eq!(failing.violation().unwrap().message, "lint violation found for rules: DuplicateStageName");
    assert_eq!(
        failing.warnings()[0].short(),
        "DuplicateStageName: Duplicate stage name \"a\", stage names should be unique (line 3)"
    );
    assert!(run("# check=error=true\nFROM scratch\n").violation().is_none());
    assert!(run("FROM scratch AS a\nFROM scratch AS a\n").violation().is_none());
}

/// Findings of a lint with `all_stages`, the target, the platforms (target,
/// the worker's) and whether `--platform` was given; every image is an
/// arm64 one.
fn lint_with(
    text: &str,
    all_stages: bool,
    target: Option<&str>,
    platform: &str,
    build_platforms: &[String],
    implicit: bool,
) -> Vec<String> {
    let resolve = |_: &str, _: &str| {
        Ok(BaseImage { platform: Some("linux/arm64".into()), env: vec!["PATH=/bin".into()], ..Default::default() })
    };
    let results = lint(&LintInput {
        dockerfile: text,
        filename: "Dockerfile",
        build_args: &BTreeMap::new(),
        target,
        all_stages,
        platform,
        build_platforms,
        implicit_platform: implicit,
        check: None,
        dockerignore: None,
        base_image: &resolve,
    });
    assert!(results.error.is_none(), "{:?}", results.error);
    results.warnings().iter().map(LintWarning::short).collect()
}

#[test]
fn a_build_lints_only_the_stages_its_target_needs() {
    let text = "FROM img AS unused\nENV A b\nFROM img AS used\nENV C d\nFROM used\nRUN true\n";
    let amd64 = ["linux/amd64".to_string()];
    let all = lint_with(text, true, None, "linux/amd64", &amd64, false);
    let build = lint_with(text, false, None, "linux/amd64", &amd64, false);
    let legacy = |line: usize| {
        format!(
            "LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line {line})"
        )
    };
    assert!(all.contains(&legacy(2)) && all.contains(&legacy(4)), "{all:?}");
    assert!(!build.contains(&legacy(2)) && build.contains(&legacy(4)), "{build:?}");
    // Only the needed stages' images are checked against the platform.
    let platform = |line: usize| {
        format!("InvalidBaseImagePlatform: Base image img was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build (line {line})")
    };
    assert!(all.contains(&platform(1)) && all.contains(&platform(3)), "{all:?}");
    assert!(!build.contains(&platform(1)) && build.contains(&platform(3)), "{build:?}");
    // A target of its own: only what it needs.
    let unused = lint_with(text, false, Some("unused"), "linux/amd64", &amd64, false);
    assert!(unused.contains(&legacy(2)) && !unused.contains(&legacy(4)), "{unused:?}");
}

#[test]
fn without_a_platform_an_image_the_worker_runs_is_no_finding() {
    let text = "FROM img\nRUN true\n";
    let only_amd64 = ["linux/amd64".to_string()];
    let both = ["linux/amd64".to_string(), "linux/arm64".to_string()];
    let found = |build: &[String], implicit| lint_with(text, false, None, "linux/amd64", build, implicit);
    assert_eq!(found(&only_amd64, true).len(), 1, "an arm64 image on an amd64-only worker");
    assert!(found(&both, true).is_empty(), "the worker runs arm64: the image's platform is taken");
    assert_eq!(found(&both, false).len(), 1, "--platform linux/amd64 asks for amd64");
}

#[test]
fn the_check_build_argument_replaces_the_directive() {
    let resolve = |_: &str, _: &str| Ok(BaseImage::default());
    let run = |check: Option<&str>| {
        lint(&LintInput {
            dockerfile: "# check=skip=all\nFROM scratch AS a\nFROM scratch AS a\n",
            filename: "Dockerfile",
            build_args: &BTreeMap::new(),
            target: None,
            all_stages: false,
            platform: "linux/amd64",
            build_platforms: &[],
            implicit_platform: true,
            check,
            dockerignore: None,
            base_image: &resolve,
        })
    };
    assert!(run(None).warnings().is_empty());
    assert_eq!(
        run(Some("error=true")).violation().unwrap().message,
        "lint violation found for rules: DuplicateStageName"
    );
    assert_eq!(
        run(Some("nope")).error.unwrap().message,
        "failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: invalid check option \"nope\""
    );
}

#[test]
fn the_text_answer_sorts_by_line_and_quotes_the_lines() {
    let text = "FROM scratch AS a\nFROM scratch AS a\nfrom scratch\n";
    let resolve = |_: &str, _: &str| Ok(BaseImage::default());
    let results = lint(&LintInput {
        dockerfile: text,
        filename: "Dockerfile",
        build_args: &BTreeMap::new(),
        target: None,
        all_stages: true,
        platform: "linux/amd64",
        build_platforms: &[],
        implicit_platform: true,
        check: None,
        dockerignore: None,
        base_image: &resolve,
    });
    let answer = results.answer(text);
    assert_eq!(answer["result.statuscode"], b"1");
    let printed = String::from_utf8(answer["result.txt"].clone()).unwrap();
    assert!(
        printed.starts_with("\nWARNING: DuplicateStageName - https://docs.docker.com/go/dockerfile/rule/duplicate-stage-name/\nDuplicate stage name \"a\", stage names should be unique\nDockerfile:2\n--------------------\n   1 |     FROM scratch AS a\n   2 | >>> FROM scratch AS a\n   3 |     from scratch\n"),
        "{printed}"
    );
    assert!(printed.contains("\nWARNING: ConsistentInstructionCasing"), "{printed}");
}
