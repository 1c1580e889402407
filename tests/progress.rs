//! fbuild's progress renderers against buildctl's on a live daemon: the same
//! build is run with buildctl's `--progress rawjson` and `--progress plain`;
//! every rawjson line must re-encode byte for byte through our encoder, and
//! the stream replayed through our plain printer must say, step by step, what
//! buildctl's plain printer said (times aside).

use std::collections::BTreeMap;
use std::path::Path;

use fbuild::progress::{drive, rawjson, ProgressMode};

use crate::util::{self, testenv};

/// A build with logs, a partial line, a warning (lint rule) and a failure.
fn failing_project(dir: &Path, token: &str) -> String {
    let dockerfile = format!(
        "FROM {} as base\n\
         RUN echo {token} && echo to-stderr >&2\n\
         COPY hello.txt /hello.txt\n\
         RUN for i in 1 2 3; do echo line $i; done; printf 'partial'; sleep 0.2; echo ' done'\n\
         RUN cat /hello.txt && echo \"bad things\" && exit 3\n",
        testenv().busybox
    );
    util::write_files(dir, &[("Dockerfile", &dockerfile), ("hello.txt", "hi\n")]);
    dockerfile
}

/// buildctl's stderr for one `--no-cache` build of `dir` in `mode`.
fn buildctl_build(dir: &Path, mode: &str) -> String {
    let out = util::buildctl()
        .args(["build", "--frontend", "dockerfile.v0", "--no-cache", "--progress", mode])
        .arg("--local")
        .arg(format!("context={}", dir.display()))
        .arg("--local")
        .arg(format!("dockerfile={}", dir.display()))
        .output()
        .expect("run buildctl");
    assert!(!out.status.success(), "the project is meant to fail");
    String::from_utf8(out.stderr).expect("buildctl writes UTF-8")
}

/// Each step's lines with times, log stamps and sizes blanked, keyed by step
/// name: parallel steps may interleave differently from run to run, but each
/// step must tell the same story. A step's stdout and stderr race each other
/// inside the daemon, so its log lines are compared as a sorted set.
fn steps(plain: &str) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let stamp = regex::Regex::new(r"^\d+\.\d+ ").unwrap();
    let secs = regex::Regex::new(r" \d+\.\d+s\b").unwrap();
    let size = regex::Regex::new(r"\b\d+(\.\d+)?[kMG]?B\b").unwrap();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut steps: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for line in plain.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((number, text)) = rest.split_once(' ') else {
            continue;
        };
        if number.parse::<u32>().is_err() || text == "..." {
            continue;
        }
        let Some(name) = names.get(number).cloned() else {
            names.insert(number.to_string(), text.to_string());
            steps.entry(text.to_string()).or_default();
            continue;
        };
        if text == name {
            continue; // the block reopened
        }
        let step = steps.entry(name).or_default();
        if stamp.is_match(text) {
            step.1.push(stamp.replace(text, "").into_owned());
            step.1.sort();
        } else {
            // A transfer's progress line before its `done` line shows only
            // when a status update happens to arrive in between (timing on a
            // busy daemon, for either client): only the final line is kept.
            if text.starts_with("transferring ") && !text.ends_with("done") && !text.contains(" done ") {
                continue;
            }
            // buildctl prints a frontend's warning (the Dockerfile's lint)
            // only on some runs, as its status update and the build's end
            // race; fbuild's warnings are checked on their own.
            if text.starts_with("WARN: ") {
                continue;
            }
            // Whether a time shows at all depends on it (>= 0.01 s), so drop it.
            let text = secs.replace_all(text, "");
            step.0.push(size.replace_all(&text, "N").into_owned());
        }
    }
    // The base image's step is one vertex (one digest) for every build on
    // the daemon that starts FROM the same image, and the daemon names it
    // after whichever build asked first: with other tests building busybox
    // at the same time it may read `[1/2] FROM …` here. Leave it out.
    steps.retain(|name, _| !name.contains("] FROM "));
    // A step that ended before its last status update arrived is printed
    // again when it does (`DONE`, the update, `DONE`), in either client,
    // depending on timing: compare the story without the early end.
    for (lines, _) in steps.values_mut() {
        let last = lines.len().saturating_sub(1);
        let mut index = 0;
        lines.retain(|line| {
            let keep = index == last || line != "DONE";
            index += 1;
            keep
        });
    }
    steps
}

#[tokio::test]
async fn plain_replay_of_buildctls_stream_matches_buildctls_plain_output() {
    let project = util::tempdir();
    let token = format!("progress-{}", std::process::id());
    let dockerfile = failing_project(project.path(), &token);

    let raw = buildctl_build(project.path(), "rawjson");
    let json_lines: Vec<&str> = raw.lines().filter(|l| l.starts_with('{')).collect();
    assert!(json_lines.len() > 20, "buildctl wrote {} status lines:\n{raw}", json_lines.len());
    let mut messages = Vec::new();
    for line in &json_lines {
        let status = rawjson::decode_line(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(&rawjson::encode_line(&status), line, "re-encoding changed the line");
        messages.push(Ok(status));
    }

    let mut ours = Vec::new();
    let summary = drive(
        ProgressMode::Plain,
        futures::stream::iter(messages),
        &mut ours,
        Some(("Dockerfile".to_string(), dockerfile)),
    )
    .await
    .expect("the replayed stream ends cleanly");
    let ours = String::from_utf8(ours).unwrap();
    assert!(summary.failed, "{ours}");
    assert_eq!(summary.steps, 5, "{ours}");
    assert!(ours.contains(&format!(" {token}\n")), "the step's log line is shown: {ours}");

    let theirs = buildctl_build(project.path(), "plain");
    assert_eq!(steps(&ours), steps(&theirs), "ours:\n{ours}\nbuildctl's:\n{theirs}");

    // The failure block: same step, same last lines.
    let block = |text: &str| -> Vec<String> {
        let stamp = regex::Regex::new(r"^\d+\.\d+ ").unwrap();
        // From the first `------` to the one closing the block.
        let mut lines: Vec<String> = text
            .lines()
            .skip_while(|l| *l != "------")
            .skip(1)
            .take_while(|l| *l != "------")
            .map(|l| stamp.replace(l, "T ").into_owned())
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(block(&ours), block(&theirs), "ours:\n{ours}\nbuildctl's:\n{theirs}");
    assert!(block(&ours).iter().any(|l| l.ends_with("bad things")), "{ours}");
}

/// `fbuild solve --progress plain` tells each step's story the way
/// `buildctl build --progress plain` does for the same build, and ends with
/// the failing step's logs, the Dockerfile excerpt buildctl prints, and the
/// summary line.
#[test]
fn fbuild_plain_progress_matches_buildctls() {
    let project = util::tempdir();
    let token = format!("fbuild-progress-{}", std::process::id());
    failing_project(project.path(), &token);

    // buildctl asks for no provenance; fbuild, like buildx, asks for one by
    // default, and the frontend then loads the Dockerfile a second time.
    // The same frontend as buildctl's, so the same steps: this is about how
    // they are shown (the native compiler's steps are `native.rs`'s).
    let out = util::fbuild()
        .args(["solve", "--no-cache", "--progress", "plain", "--provenance=false", "--frontend", "dockerfile.v0"])
        .arg(project.path())
        .output()
        .expect("run fbuild");
    assert!(!out.status.success(), "the project is meant to fail");
    let ours = String::from_utf8(out.stderr).expect("fbuild writes UTF-8");
    // fbuild warns first, as buildx does, that the result goes nowhere.
    let ours = ours
        .strip_prefix("WARNING: No output specified.")
        .map_or(ours.clone(), |rest| rest.split_once('\n').map(|(_, rest)| rest.to_owned()).unwrap_or_default());
    let theirs = buildctl_build(project.path(), "plain");
    assert_eq!(steps(&ours), steps(&theirs), "fbuild:\n{ours}\nbuildctl:\n{theirs}");
    // The lint's warning (`as` after `FROM`) in its step, as buildctl shows
    // it when its status update wins the race.
    assert!(ours.lines().any(|l| l.starts_with('#') && l.contains(" WARN: FromAsCasing:")), "fbuild:\n{ours}");

    // buildctl's excerpt of the failing instruction, verbatim.
    let excerpt: String = theirs
        .lines()
        .skip_while(|l| !l.starts_with("Dockerfile:"))
        .take_while(|l| !l.starts_with("error:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(excerpt.starts_with("Dockerfile:5\n"), "{theirs}");
    assert!(ours.contains(&excerpt), "fbuild:\n{ours}\nbuildctl:\n{theirs}");
    assert!(ours.contains("Build failed after "), "the summary line is printed: {ours}");
    // FROM (cached) and four instructions; the last one fails.
    assert!(ours.contains(": 5 steps, 1 cached (20%)\n"), "{ours}");
}
