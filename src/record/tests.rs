//! Explanations and predictions from hand-made records, and the store's
//! handling of bad record files.

use super::explain::{self, Cause, DaemonCache};
use super::*;

fn step(stage: &str, position: u32, text: &str, inputs: &[&str]) -> StepRecord {
    StepRecord {
        digest: format!("sha256:{stage}{position}{text}"),
        own: format!("own:{text}"),
        name: format!("[{stage} {position}/9] {text}"),
        stage: stage.into(),
        position,
        text: text.into(),
        lines: vec![position],
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        base_image: None,
        reads: Vec::new(),
        args: Vec::new(),
        ignore_cache: false,
        cache_mounts: Vec::new(),
        state: StepState::Cached,
        duration_ms: 0,
        cause: None,
    }
}

fn record(steps: Vec<StepRecord>) -> BuildRecord {
    BuildRecord {
        version: RECORD_VERSION,
        fbuild: "test".into(),
        target: String::new(),
        created: 0,
        steps,
        build_args: BTreeMap::new(),
        files: BTreeMap::new(),
        files_complete: true,
        cache_imports: Vec::new(),
        no_cache: false,
        no_cache_filter: Vec::new(),
    }
}

/// FROM, COPY requirements.txt, RUN pip install (reads X), COPY . .
fn project() -> BuildRecord {
    let mut from = step("deps", 1, "FROM python", &[]);
    from.base_image = Some(BaseImage { reference: "python".into(), digest: "sha256:aaaa".into() });
    let mut req = step("deps", 2, "COPY requirements.txt .", &[]);
    req.inputs = vec![from.digest.clone()];
    req.reads = vec!["/requirements.txt".into()];
    let mut pip = step("deps", 3, "RUN pip install", &[]);
    pip.inputs = vec![req.digest.clone()];
    pip.args = vec!["X".into()];
    let mut code = step("deps", 4, "COPY . .", &[]);
    code.inputs = vec![pip.digest.clone()];
    code.reads = vec!["/".into()];
    let mut record = record(vec![from, req, pip, code]);
    record.files.insert("requirements.txt".into(), "sha256:1".into());
    record.files.insert("app.py".into(), "sha256:2".into());
    record.build_args.insert("X".into(), arg_digest("X", "1"));
    record
}

fn ran(record: &mut BuildRecord, from: usize) {
    for step in &mut record.steps[from..] {
        step.state = StepState::Ran;
    }
}

fn causes(verdicts: &[explain::Verdict]) -> Vec<Option<Cause>> {
    verdicts.iter().map(|v| v.cause.clone()).collect()
}

#[test]
fn a_changed_manifest_starts_the_chain() {
    let before = project();
    let mut after = project();
    after.files.insert("requirements.txt".into(), "sha256:changed".into());
    ran(&mut after, 1);
    let verdicts = explain::explain(Some(&before), &mut after);
    let root = after.steps[1].name.clone();
    assert_eq!(
        causes(&verdicts),
        [
            None,
            Some(Cause::ContextChanged { paths: vec!["requirements.txt".into()], more: 0 }),
            Some(Cause::Upstream { step: root.clone() }),
            Some(Cause::Upstream { step: root }),
        ]
    );
    let text = explain::render_text(&verdicts, "ran", false);
    assert_eq!(text, "[deps 2/9] COPY requirements.txt . ran: requirements.txt changed (and 2 steps after it)\n");
}

#[test]
fn each_kind_of_change_is_named() {
    let before = project();
    // A code change: only the last COPY.
    let mut after = project();
    after.files.insert("app.py".into(), "sha256:new".into());
    ran(&mut after, 3);
    let verdicts = explain::explain(Some(&before), &mut after);
    assert_eq!(verdicts[3].cause, Some(Cause::ContextChanged { paths: vec!["app.py".into()], more: 0 }));

    // A build arg the RUN sees.
    let mut after = project();
    after.build_args.insert("X".into(), arg_digest("X", "2"));
    after.steps[2].own = "own:other".into();
    ran(&mut after, 2);
    let verdicts = explain::explain(Some(&before), &mut after);
    assert_eq!(verdicts[2].cause, Some(Cause::BuildArgChanged { names: vec!["X".into()] }));

    // The base image moved.
    let mut after = project();
    after.steps[0].base_image.as_mut().unwrap().digest = "sha256:bbbb".into();
    ran(&mut after, 0);
    let verdicts = explain::explain(Some(&before), &mut after);
    assert!(
        matches!(&verdicts[0].cause, Some(Cause::BaseImageMoved { old, new, .. }) if old == "sha256:aaaa" && new == "sha256:bbbb")
    );

    // An edited line, then nothing changed at all (evicted), then with an import.
    let mut after = project();
    after.steps[2].text = "RUN pip install -r requirements.txt".into();
    ran(&mut after, 2);
    let verdicts = explain::explain(Some(&before), &mut after);
    assert_eq!(verdicts[2].cause, Some(Cause::LineChanged { was: "RUN pip install".into() }));
    let mut after = project();
    ran(&mut after, 0);
    let verdicts = explain::explain(Some(&before), &mut after);
    // The unchanged base image was only resolved; the step after it was evicted.
    assert_eq!((verdicts[0].runs, &verdicts[0].cause), (false, &None));
    assert_eq!(after.steps[0].state, StepState::Resolved);
    assert_eq!(verdicts[1].cause, Some(Cause::Evicted));
    let mut after = project();
    after.cache_imports = vec!["type=local,src=c".into()];
    ran(&mut after, 0);
    assert!(matches!(explain::explain(Some(&before), &mut after)[1].cause, Some(Cause::CacheImportMiss { .. })));
    let mut after = project();
    after.no_cache = true;
    for step in &mut after.steps {
        step.ignore_cache = true;
    }
    ran(&mut after, 0);
    assert!(explain::explain(Some(&before), &mut after).iter().all(|v| v.cause == Some(Cause::NoCache)));
}

#[test]
fn a_plan_foresees_the_chain_and_an_empty_daemon() {
    let before = project();
    let mut after = project();
    after.files.insert("app.py".into(), "sha256:new".into());
    let verdicts = explain::predict(Some(&before), &mut after, DaemonCache::Warm, None);
    assert_eq!(verdicts.iter().map(|v| v.runs).collect::<Vec<_>>(), [false, false, false, true]);
    let mut after = project();
    let verdicts = explain::predict(Some(&before), &mut after, DaemonCache::Empty, None);
    assert_eq!(verdicts.iter().map(|v| v.runs).collect::<Vec<_>>(), [false, true, true, true]);
    let mut after = project();
    after.cache_imports = vec!["type=local,src=c".into()];
    let verdicts = explain::predict(Some(&before), &mut after, DaemonCache::Empty, Some(&before));
    assert!(verdicts.iter().all(|v| !v.runs));
}

#[test]
fn bad_record_files_are_errors_not_records() {
    let dir = tempfile::tempdir().unwrap();
    let good = project();
    let path = store::save_to_cache_folder(dir.path(), &good).unwrap();
    assert_eq!(store::load_from_cache_folder(dir.path(), "").unwrap(), Some(good.clone()));
    std::fs::write(&path, b"{not json").unwrap();
    assert!(matches!(store::read(&path), Err(RecordError::Corrupt { .. })));
    std::fs::write(&path, br#"{"version": 99}"#).unwrap();
    assert!(matches!(store::read(&path), Err(RecordError::OtherVersion { found: 99, .. })));
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
    assert!(matches!(store::read(&path), Err(RecordError::NotARecordFile { .. })));
    assert_eq!(store::load_from_cache_folder(tempfile::tempdir().unwrap().path(), "x").unwrap(), None);
}

#[test]
fn the_state_folder_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::at(dir.path());
    for i in 0..store::MAX_RECORDS + 5 {
        store.save(Path::new("/p"), Path::new("/p/Dockerfile"), &format!("t{i}"), &project()).unwrap();
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), store::MAX_RECORDS);
}
