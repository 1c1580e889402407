//! Renders whole status streams and snapshots what people read: a synthetic
//! build (cached step, logs, a transfer, a warning, a failure with Dockerfile
//! context) with fixed timestamps, and streams recorded from buildctl
//! against buildkitd v0.32.2 (`testdata/`).

use super::model::tests::{range, ts, vertex, with_vertexes as vertexes};
use super::model::Ts;
use super::tty::{frame, plain_text, FrameSize};
use super::*;
use crate::proto::moby::buildkit::v1::{VertexLog, VertexStatus, VertexWarning};

const DOCKERFILE: &str = "FROM busybox as base\nRUN echo one\nCOPY app /app\nRUN make\n";
fn log(digest: &str, ms: i64, stream: i64, text: &str) -> StatusResponse {
    StatusResponse {
        logs: vec![VertexLog {
            vertex: digest.into(),
            timestamp: ts(ms),
            stream,
            msg: text.as_bytes().to_vec().into(),
        }],
        ..Default::default()
    }
}

fn transfer(digest: &str, id: &str, current: i64, total: i64, ms: i64, done: bool) -> StatusResponse {
    StatusResponse {
        statuses: vec![VertexStatus {
            id: id.into(),
            vertex: digest.into(),
            current,
            total,
            timestamp: ts(ms),
            started: ts(40),
            completed: if done { ts(ms) } else { None },
            ..Default::default()
        }],
        ..Default::default()
    }
}

const FROM: &str = "[1/4] FROM docker.io/library/busybox:latest@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7";
const LAYER: &str = "sha256:9c0abc9c5bd3a7854141800ba1f4a227baa88b11b49d8207eadc483c3f2496de";

/// A build of [`DOCKERFILE`] where step 2 is cached, step 1 pulls a layer,
/// the definition load warns, and `RUN make` fails after some output.
fn synthetic_build() -> Vec<StatusResponse> {
    let mut failing = vertex("sha256:d5", "[4/4] RUN make", Some(1200), Some(3450));
    failing.error = "process \"/bin/sh -c make\" did not complete successfully: exit code: 2".into();
    let mut cached = vertex("sha256:d3", "[2/4] RUN echo one", Some(1000), Some(1000));
    cached.cached = true;
    cached.inputs = vec!["sha256:d2".into()];
    vec![
        vertexes(vec![vertex("sha256:d1", "[internal] load build definition from Dockerfile", None, None)]),
        vertexes(vec![vertex("sha256:d1", "[internal] load build definition from Dockerfile", Some(0), None)]),
        StatusResponse {
            statuses: vec![VertexStatus {
                id: "transferring dockerfile:".into(),
                vertex: "sha256:d1".into(),
                current: 81,
                timestamp: ts(12),
                started: ts(1),
                completed: ts(12),
                ..Default::default()
            }],
            warnings: vec![VertexWarning {
                vertex: "sha256:d1".into(),
                level: 1,
                short: b"FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)".to_vec().into(),
                detail: vec![b"The 'as' keyword should match the case of the 'from' keyword".to_vec().into()],
                url: "https://docs.docker.com/go/dockerfile/rule/from-as-casing/".into(),
                info: Some(pb::SourceInfo {
                    filename: "Dockerfile".into(),
                    data: DOCKERFILE.as_bytes().to_vec().into(),
                    language: "Dockerfile".into(),
                    ..Default::default()
                }),
                ranges: vec![range(1, 0, 0)],
            }],
            ..Default::default()
        },
        vertexes(vec![vertex("sha256:d1", "[internal] load build definition from Dockerfile", Some(0), Some(20))]),
        vertexes(vec![
            vertex("sha256:d5", "[4/4] RUN make", None, None),
            vertex("sha256:d4", "[3/4] COPY app /app", None, None),
            vertex("sha256:d3", "[2/4] RUN echo one", None, None),
            vertex("sha256:d2", FROM, None, None),
        ]),
        vertexes(vec![vertex("sha256:d2", FROM, Some(30), None)]),
        transfer("sha256:d2", LAYER, 1_048_576, 2_150_000, 300, false),
        transfer("sha256:d2", LAYER, 1_100_000, 2_150_000, 400, false),
        transfer("sha256:d2", LAYER, 2_150_000, 2_150_000, 900, true),
        vertexes(vec![vertex("sha256:d2", FROM, Some(30), Some(1000))]),
        vertexes(vec![cached, vertex("sha256:d4", "[3/4] COPY app /app", Some(1000), None)]),
        vertexes(vec![vertex("sha256:d4", "[3/4] COPY app /app", Some(1000), Some(1200))]),
        vertexes(vec![vertex("sha256:d5", "[4/4] RUN make", Some(1200), None)]),
        log("sha256:d5", 1250, 1, "cc -o app main.c\n"),
        log("sha256:d5", 1300, 2, "main.c:3: warning: unused variable\nlinking"),
        log("sha256:d5", 2100, 2, "...\n"),
        log("sha256:d5", 3400, 2, "ld: cannot find -lfoo\nmake: *** [app] Error 2\n"),
        vertexes(vec![failing]),
    ]
}

fn make_failure() -> BuildFailure {
    BuildFailure {
        message: "process \"/bin/sh -c make\" did not complete successfully: exit code: 2".into(),
        vertex: Some("sha256:d5".into()),
        sources: vec![SourceSnippet {
            filename: "Dockerfile".into(),
            text: DOCKERFILE.into(),
            ranges: vec![LineRange { start: 4, end: 4 }],
        }],
    }
}

fn render(mode: ProgressMode, messages: &[StatusResponse], outcome: &Result<(), BuildFailure>) -> (String, Summary) {
    let mut writer = ProgressWriter::new(mode, Vec::new()).with_color(false).with_terminal_size(100, 30);
    for m in messages {
        writer.update(m);
    }
    let summary = writer.finish(outcome);
    assert!(writer.write_error().is_none());
    (String::from_utf8(writer.into_inner()).expect("utf-8 output"), summary)
}

#[test]
fn plain_synthetic_failure() {
    let (out, summary) = render(ProgressMode::Plain, &synthetic_build(), &Err(make_failure()));
    insta::assert_snapshot!("plain_synthetic_failure", out);
    assert_eq!(
        summary,
        Summary {
            steps: 4,
            cached: 1,
            failed: true,
            canceled: false,
            duration: Duration::from_millis(3450),
            warnings: 1
        }
    );
    assert!(out.ends_with("Build failed after 3.5s: 4 steps, 1 cached (25%)\n"));
}

#[test]
fn rawjson_synthetic_failure() {
    let messages = synthetic_build();
    let (out, _) = render(ProgressMode::RawJson, &messages, &Err(make_failure()));
    insta::assert_snapshot!("rawjson_synthetic_failure", out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), messages.len(), "one line per message, and nothing else");
    for (line, message) in lines.iter().zip(&messages) {
        let value: serde_json::Value = serde_json::from_str(line).expect("each progress line is JSON");
        assert!(value.is_object());
        assert_eq!(&rawjson::decode_line(line).expect("decodes"), message);
    }
}

#[test]
fn tty_frames_synthetic_failure() {
    let messages = synthetic_build();
    let mut model = model::Model::new();
    let size = FrameSize { width: 100, height: Some(12), log_lines: 3 };
    // Mid-build: the pull half done, then `RUN make` running with output.
    for m in &messages[..7] {
        model.apply(m);
    }
    let pulling = plain_text(&frame(&model, Ts::from_proto(&ts(350).unwrap()), size, false));
    for m in &messages[7..16] {
        model.apply(m);
    }
    let running = plain_text(&frame(&model, Ts::from_proto(&ts(2500).unwrap()), size, false));
    for m in &messages[16..] {
        model.apply(m);
    }
    let end = model.latest().unwrap();
    let last = plain_text(&frame(&model, end, FrameSize { height: None, ..size }, true));
    insta::assert_snapshot!("tty_frame_pulling", pulling);
    insta::assert_snapshot!("tty_frame_running", running);
    insta::assert_snapshot!("tty_frame_final", last);
}

#[test]
fn tty_finish_draws_the_final_frame_then_the_report() {
    let (out, _) = render(ProgressMode::Tty, &synthetic_build(), &Err(make_failure()));
    // Everything after the last redraw is plain text: the report and the summary.
    let report = out.rsplit("\x1b[J\x1b[?25h").next().unwrap();
    insta::assert_snapshot!("tty_report", report);
    assert!(!out.contains("\x1b[3"), "no colour when disabled");
}

#[test]
fn tty_height_keeps_running_steps() {
    let messages = synthetic_build();
    let mut model = model::Model::new();
    for m in &messages[..16] {
        model.apply(m);
    }
    let tiny = FrameSize { width: 60, height: Some(5), log_lines: 6 };
    let lines = frame(&model, Ts::from_proto(&ts(2500).unwrap()), tiny, false);
    let text = plain_text(&lines);
    assert_eq!(lines.len(), 4, "{text}");
    assert!(text.starts_with("[+] Building 2.5s (4/5)\n"), "{text}");
    assert!(text.contains(" => [4/4] RUN make"), "the running step survives: {text}");
    assert!(lines.iter().all(|l| l.text.chars().count() < 60), "{text}");
}

#[test]
fn success_summary_and_quiet_silence() {
    let mut messages = synthetic_build();
    messages.truncate(12);
    messages.push(vertexes(vec![vertex("sha256:d5", "[4/4] RUN make", Some(1200), Some(1500))]));
    let (out, summary) = render(ProgressMode::Plain, &messages, &Ok(()));
    // buildx's short list of warnings...
    assert!(
        out.ends_with("#5 DONE 0.3s\n1 warning found (use -v to expand):\n - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\nBuilt in 1.5s: 4 steps, 1 cached (25%)\n"),
        "{out}"
    );
    // ...and with -v, each in full.
    let mut writer = ProgressWriter::new(ProgressMode::Plain, Vec::new()).with_expanded_warnings(true);
    for m in &messages {
        writer.update(m);
    }
    writer.finish(&Ok::<(), BuildFailure>(()));
    let out = String::from_utf8(writer.into_inner()).unwrap();
    assert!(out.ends_with("#5 DONE 0.3s\n1 warning found:\n - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n   The 'as' keyword should match the case of the 'from' keyword\n   More info: https://docs.docker.com/go/dockerfile/rule/from-as-casing/\nDockerfile:1\n--------------------\n   1 | >>> FROM busybox as base\n   2 |     RUN echo one\n   3 |     COPY app /app\n--------------------\nBuilt in 1.5s: 4 steps, 1 cached (25%)\n"), "{out}");
    assert!(!summary.failed);
    let (quiet, quiet_summary) = render(ProgressMode::Quiet, &messages, &Ok(()));
    assert_eq!(quiet, "");
    assert_eq!(quiet_summary, summary);
}

#[test]
fn quiet_still_shows_what_failed() {
    let (plain, _) = render(ProgressMode::Plain, &synthetic_build(), &Err(make_failure()));
    let (quiet, summary) = render(ProgressMode::Quiet, &synthetic_build(), &Err(make_failure()));
    assert!(summary.failed);
    // The failed step's log and its Dockerfile lines, as in plain mode, and
    // nothing else (no steps, no warnings, no summary line).
    assert!(quiet.starts_with("------\n > [4/4] RUN make:\n"), "{quiet}");
    assert!(quiet.contains(">>> RUN make"), "{quiet}");
    assert!(plain.contains(&quiet), "quiet:\n{quiet}\nplain:\n{plain}");
    assert!(!quiet.contains("warning found") && !quiet.contains("Built in"), "{quiet}");
}

#[test]
fn cancelled_steps_are_marked_canceled() {
    // A step still running when the user cancels.
    let messages = vec![vertexes(vec![
        vertex("sha256:c1", "[1/2] FROM busybox", Some(0), Some(100)),
        vertex("sha256:c2", "[2/2] RUN sleep 100", Some(100), None),
    ])];
    let mut writer = ProgressWriter::new(ProgressMode::Plain, Vec::new());
    for m in &messages {
        writer.update(m);
    }
    let summary = writer.finish_cancelled();
    assert!(summary.canceled);
    let out = String::from_utf8(writer.into_inner()).unwrap();
    assert!(out.contains("#2 [2/2] RUN sleep 100\n#2 CANCELED\n"), "{out}");
    assert!(!out.contains("#1 CANCELED"), "a finished step stays done: {out}");

    let mut writer = ProgressWriter::new(ProgressMode::Tty, Vec::new()).with_color(false).with_terminal_size(100, 30);
    for m in &messages {
        writer.update(m);
    }
    writer.finish_cancelled();
    let out = String::from_utf8(writer.into_inner()).unwrap();
    assert!(out.contains("CANCELED [2/2] RUN sleep 100"), "{out}");
}

#[test]
fn progress_modes_parse_like_buildx() {
    assert_eq!("auto".parse::<ProgressMode>().unwrap(), ProgressMode::Auto);
    assert_eq!("TTY".parse::<ProgressMode>().unwrap(), ProgressMode::Tty);
    assert_eq!("plain".parse::<ProgressMode>().unwrap(), ProgressMode::Plain);
    assert_eq!("rawjson".parse::<ProgressMode>().unwrap(), ProgressMode::RawJson);
    assert_eq!("quiet".parse::<ProgressMode>().unwrap(), ProgressMode::Quiet);
    assert_eq!("none".parse::<ProgressMode>().unwrap(), ProgressMode::Quiet);
    let err: ParseModeError = "fancy".parse::<ProgressMode>().unwrap_err();
    assert_eq!(err.to_string(), "unknown progress mode \"fancy\" (expected auto, tty, plain, rawjson, quiet or none)");
    assert_eq!(ProgressMode::Auto.resolve(true), ProgressMode::Tty);
    assert_eq!(ProgressMode::Auto.resolve(false), ProgressMode::Plain);
    assert_eq!(ProgressMode::RawJson.resolve(true), ProgressMode::RawJson);
    assert_eq!(ProgressMode::RawJson.to_string(), "rawjson");
}

// --- Streams recorded from buildctl -------------------------------------

const RECORDED_FAILURE: &str = include_str!("testdata/buildctl-failure.jsonl");
const RECORDED_FAILURE_STDERR: &str = include_str!("testdata/buildctl-failure.stderr.txt");
const RECORDED_SUCCESS: &str = include_str!("testdata/buildctl-success.jsonl");

fn recorded(text: &str) -> Vec<StatusResponse> {
    text.lines().map(|l| rawjson::decode_line(l).expect("recorded line decodes")).collect()
}

/// The Dockerfile the failure fixture built, as its warning carries it.
fn recorded_dockerfile(messages: &[StatusResponse]) -> String {
    let info = messages.iter().flat_map(|m| &m.warnings).find_map(|w| w.info.as_ref()).expect("a warning with source");
    String::from_utf8(info.data.to_vec()).unwrap()
}

#[test]
fn plain_recorded_failure_matches_buildctl() {
    let messages = recorded(RECORDED_FAILURE);
    let dockerfile = recorded_dockerfile(&messages);
    // What the daemon's solve error carried: the source with the failing line.
    let failure = BuildFailure {
        message: "process \"/bin/sh -c cat /hello.txt && echo \\\"bad things\\\" && exit 3\" did not complete successfully: exit code: 3".into(),
        vertex: None,
        sources: vec![SourceSnippet { filename: "Dockerfile".into(), text: String::new(), ranges: vec![LineRange { start: 5, end: 5 }] }],
    };
    let mut writer =
        ProgressWriter::new(ProgressMode::Plain, Vec::new()).with_dockerfile(SourceFile::new("Dockerfile", dockerfile));
    for m in &messages {
        writer.update(m);
    }
    let summary = writer.finish(&Err::<(), _>(failure));
    let out = String::from_utf8(writer.into_inner()).unwrap();
    insta::assert_snapshot!("plain_recorded_failure", out);
    // buildctl printed the same Dockerfile excerpt (its stderr, minus its own error line).
    let excerpt: String =
        RECORDED_FAILURE_STDERR.lines().take_while(|l| !l.starts_with("error:")).map(|l| format!("{l}\n")).collect();
    assert!(excerpt.starts_with("Dockerfile:5\n"), "{excerpt}");
    assert!(out.contains(&excerpt), "{out}");
    assert_eq!((summary.steps, summary.cached, summary.failed), (5, 1, true));
}

#[test]
fn plain_recorded_success() {
    let (out, summary) = render(ProgressMode::Plain, &recorded(RECORDED_SUCCESS), &Ok(()));
    insta::assert_snapshot!("plain_recorded_success", out);
    assert_eq!((summary.steps, summary.cached, summary.failed), (4, 2, false));
}

#[test]
fn tty_recorded_success_final_frame() {
    let mut model = model::Model::new();
    for m in recorded(RECORDED_SUCCESS) {
        model.apply(&m);
    }
    let end = model.latest().unwrap();
    let text = plain_text(&frame(&model, end, FrameSize { width: 120, height: None, log_lines: 6 }, true));
    insta::assert_snapshot!("tty_recorded_success", text);
}

#[tokio::test]
async fn drive_reads_a_stream_to_its_end() {
    let messages = synthetic_build();
    let stream = futures::stream::iter(messages.into_iter().map(Ok));
    let mut out = Vec::new();
    let summary =
        drive(ProgressMode::Plain, stream, &mut out, Some(("Dockerfile".to_string(), DOCKERFILE.to_string())))
            .await
            .expect("stream ends cleanly");
    assert!(summary.failed, "a failed step fails the build");
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("#5 ERROR: process \"/bin/sh -c make\" did not complete successfully: exit code: 2\n"),
        "{text}"
    );
    assert!(text.ends_with("Build failed after 3.5s: 4 steps, 1 cached (25%)\n"), "{text}");
}

#[tokio::test]
async fn drive_reports_a_broken_stream() {
    let items = vec![Ok(synthetic_build().remove(1)), Err(tonic::Status::unavailable("daemon went away"))];
    let mut out = Vec::new();
    let err = drive(ProgressMode::Plain, futures::stream::iter(items), &mut out, None).await.unwrap_err();
    assert!(matches!(err, ProgressError::Stream(ref s) if s.code() == tonic::Code::Unavailable), "{err:?}");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Build failed after"), "the summary still ends the output: {text}");
}

#[test]
fn closed_output_does_not_stop_the_build() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut writer = ProgressWriter::new(ProgressMode::Plain, Broken);
    for m in synthetic_build() {
        writer.update(&m);
    }
    let summary = writer.finish(&Ok(()));
    assert_eq!(summary.steps, 4);
    assert_eq!(writer.write_error().map(|e| e.kind()), Some(io::ErrorKind::BrokenPipe));
}

#[test]
fn definition_source_map_locates_a_failed_step_without_error_details() {
    let source = pb::Source {
        locations: [(
            "sha256:d5".to_string(),
            pb::Locations { locations: vec![pb::Location { source_index: 0, ranges: vec![range(4, 0, 8)] }] },
        )]
        .into_iter()
        .collect(),
        // The text is left out: the writer's copy of the Dockerfile fills it in.
        infos: vec![pb::SourceInfo { filename: "Dockerfile".into(), ..Default::default() }],
    };
    let mut writer = ProgressWriter::new(ProgressMode::Plain, Vec::new())
        .with_dockerfile(SourceFile::new("Dockerfile", DOCKERFILE))
        .with_definition_source(&source);
    for m in synthetic_build() {
        writer.update(&m);
    }
    writer.finish(&Err::<(), _>(BuildFailure::new("exit code: 2")));
    let out = String::from_utf8(writer.into_inner()).unwrap();
    assert!(
        out.contains("------\nDockerfile:4\n--------------------\n   2 |     RUN echo one\n   3 |     COPY app /app\n   4 | >>> RUN make\n   5 |     \n--------------------\n"),
        "{out}"
    );
}

/// Defect 9 of issue 20: a build killed while a step prints nothing got the
/// daemon's last timestamp as its length ("failed after 0.4s" 4 s in). The
/// summary counts from the start of the build.
#[test]
fn the_summary_counts_from_the_start_of_the_build() {
    let mut writer = ProgressWriter::new(ProgressMode::Plain, Vec::new()).with_color(false);
    writer.started = std::time::Instant::now().checked_sub(Duration::from_secs(10)).expect("an uptime over 10 s");
    for m in &synthetic_build() {
        writer.update(m);
    }
    let summary = writer.finish(&Err::<(), _>(make_failure()));
    assert!(summary.duration >= Duration::from_secs(10), "{:?}", summary.duration);
    let out = String::from_utf8(writer.into_inner()).unwrap();
    assert!(out.ends_with("Build failed after 10.0s: 4 steps, 1 cached (25%)\n"), "{out}");
}
