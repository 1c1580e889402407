//! The LLBBridge gateway and the LLB builder against the real daemon.
//!
//! A client-side frontend runs next to a `Control.Solve` that has neither a
//! frontend nor a definition, as Go's `client.Build` does; a definition made
//! with `fbuild::llb` is also solved directly and pushed to the test registry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fbuild::build::{build, BuildError, BuildReport, BuildRequest, CancellationToken, Frontend, NoProgress};
use fbuild::connect::{self, ConnectOptions};
use fbuild::control::Control;
use fbuild::gateway::{ClientFrontend, FrontendError, FrontendOutput, Gateway, GatewayError};
use fbuild::llb::{self, Run};

use crate::util::{registry_manifest, testenv};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

async fn control() -> Control {
    let options = ConnectOptions { addr: Some(testenv().addr.clone()), ..Default::default() };
    let connection = connect::open(&options, connect::CONNECT_TIMEOUT).await.expect("connect to the test daemon");
    Control::new(connection.channel)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Runs `frontend` as the client-side frontend of a new build, through the
/// library's build path: `Control.Solve` with no frontend and no definition,
/// the frontend beside it on the same connection.
async fn build_with(control: &Control, frontend: Arc<dyn ClientFrontend>) -> Result<BuildReport, BuildError> {
    let request = BuildRequest::new(Frontend::Client(frontend));
    build(control.channel(), request, &mut NoProgress, &CancellationToken::new()).await
}

/// Resolves busybox, runs a command on it, reads the file the command wrote,
/// and returns the result with the image's config.
struct EchoFrontend {
    seen: Mutex<Option<(String, Vec<u8>)>>,
}

#[tonic::async_trait]
impl ClientFrontend for EchoFrontend {
    async fn build(&self, gateway: &Gateway) -> Result<FrontendOutput, FrontendError> {
        let busybox = &testenv().busybox;
        let image = gateway.resolve_image_config(busybox, None).await?;
        let state = llb::image(busybox).run(Run::shell("echo hi > /hi")).root();
        let reference = gateway.solve(state.marshal().map_err(FrontendError::new)?).await?;
        let hi = gateway.read_file(&reference, "/hi").await?;
        *self.seen.lock().expect("not poisoned") = Some((image.digest.clone(), hi));
        let metadata = BTreeMap::from([("containerimage.config".to_owned(), image.config)]);
        Ok(FrontendOutput { reference: Some(reference), metadata, ..Default::default() })
    }
}

#[test]
fn client_frontend_resolves_solves_reads_and_returns() {
    let frontend = Arc::new(EchoFrontend { seen: Mutex::new(None) });
    let report = runtime().block_on(async {
        let control = control().await;
        build_with(&control, frontend.clone()).await
    });
    let report = report.expect("the frontend ran and returned, and the solve ended");
    assert!(report.summary.steps >= 1, "{:?}", report.summary);
    let (digest, hi) = frontend.seen.lock().expect("not poisoned").take().expect("the frontend got that far");
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "image digest {digest:?}");
    assert_eq!(String::from_utf8_lossy(&hi), "hi\n");
}

/// Fails with its own message before touching the gateway.
struct RefusingFrontend;

#[tonic::async_trait]
impl ClientFrontend for RefusingFrontend {
    async fn build(&self, _gateway: &Gateway) -> Result<FrontendOutput, FrontendError> {
        Err(FrontendError::new("the frontend refuses: no Dockerfile here"))
    }
}

#[test]
fn a_frontend_error_fails_the_solve_with_its_message() {
    let result = runtime().block_on(async {
        let control = control().await;
        build_with(&control, Arc::new(RefusingFrontend)).await
    });
    let err = result.expect_err("the frontend failed");
    let failure = err.failure().unwrap_or_else(|| panic!("a failed build, not {err:?}"));
    assert!(failure.message.contains("the frontend refuses: no Dockerfile here"), "{}", failure.message);
    // No step failed, so no step is blamed.
    assert_eq!(failure.vertex, None, "{failure:?}");
}

/// Solves a command that fails and forces the build with `evaluate`.
struct FailingStepFrontend;

#[tonic::async_trait]
impl ClientFrontend for FailingStepFrontend {
    async fn build(&self, gateway: &Gateway) -> Result<FrontendOutput, FrontendError> {
        let state = llb::image(&testenv().busybox).run(Run::shell("echo failing step >&2; exit 3")).root();
        let reference = gateway.solve(state.marshal().map_err(FrontendError::new)?).await?;
        gateway.evaluate(&reference).await?;
        Ok(FrontendOutput { reference: Some(reference), ..Default::default() })
    }
}

#[test]
fn a_failed_step_fails_the_solve_with_the_daemons_error() {
    let result = runtime().block_on(async {
        let control = control().await;
        build_with(&control, Arc::new(FailingStepFrontend)).await
    });
    let err = result.expect_err("the step failed");
    let failure = err.failure().unwrap_or_else(|| panic!("a failed build, not {err:?}"));
    let message = &failure.message;
    // The daemon's own wording, forwarded through Return with its details.
    assert!(
        message.contains(r#"process "/bin/sh -c echo failing step >&2; exit 3" did not complete successfully"#),
        "{message}"
    );
    assert!(message.contains("exit code: 3"), "{message}");
    // The daemon's typed details came back through Return, so the build's
    // error still names the failed step (what progress output shows).
    assert!(failure.vertex.as_deref().is_some_and(|v| v.starts_with("sha256:")), "{failure:?}");
}

#[test]
fn gateway_calls_are_routed_by_build_ref() {
    runtime().block_on(async {
        let control = control().await;
        // No build has this ref: the daemon waits ~3 s for it to register,
        // then answers "no such job <ref>", which proves it read the ref
        // from our metadata (without it the error is "no buildid found").
        let build_ref = unique("fbuild-nobody-");
        let gateway = Gateway::new(control.channel().clone(), &build_ref, "no-session").expect("an ASCII ref");
        let started = Instant::now();
        let err = gateway.ping().await.expect_err("an unknown build");
        let status = err.status().expect("a daemon status");
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        assert!(status.message().contains(&format!("no such job {build_ref}")), "{status:?}");
        assert!(started.elapsed() >= Duration::from_secs(2), "the daemon waited for the build to register");

        let err = Gateway::new(control.channel().clone(), "bad\nref", "s").expect_err("not a header value");
        assert!(matches!(err, GatewayError::InvalidBuildRef { .. }), "{err:?}");
    });
}

#[test]
fn an_llb_definition_solves_and_pushes_an_image() {
    let env = testenv();
    let tag = unique("t");
    let repo = "fbuild-test/llb";
    let response = runtime().block_on(async {
        let control = control().await;
        let state = llb::image(&env.busybox).file(llb::mkfile("/hello", 0o644, format!("hello {tag}\n")));
        let export = fbuild::output::parse_output(&format!(
            "type=image,name={}/{repo}:{tag},push=true,registry.insecure=true",
            env.registry
        ))
        .expect("a valid output");
        let request =
            BuildRequest::new(Frontend::Definition(state.marshal().expect("the graph marshals"))).export(export);
        build(control.channel(), request, &mut NoProgress, &CancellationToken::new())
            .await
            .expect("the definition solves and the image is pushed")
    });
    let digest = &response.exporter_response["containerimage.digest"];
    let manifest = registry_manifest(repo, &tag).expect("the registry has the pushed manifest");
    let base = registry_manifest("busybox", "latest").expect("the registry has busybox");
    let layers = |manifest: &serde_json::Value| manifest["layers"].as_array().map_or(0, Vec::len);
    // busybox's layers plus the one the file op added.
    assert_eq!(layers(&manifest), layers(&base) + 1, "{manifest}");
    assert!(digest.starts_with("sha256:"), "{:?}", response.exporter_response);
}
