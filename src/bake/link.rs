//! `target:` contexts, handed over as buildx hands them: the target a
//! context names is solved through the gateway, and its result's graph
//! (the definition the daemon reports for it) becomes a *frontend input* of
//! the dependent target's Dockerfile frontend (`context:NAME=input:KEY`,
//! with the image config in `input-metadata:KEY`). The dependent build
//! then contains the linked target's very vertices, so its layers are the
//! ones `buildx bake` gives, and nothing comes back to this machine.
//!
//! A linked target's build stays open until every target using it has
//! finished: its session serves the folders its graph reads, which the
//! dependents solve again (buildx's `linkedTargetState` does the same).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::gateway::{ClientFrontend, FrontendError, FrontendOutput, Gateway};
use crate::proto::pb;

/// What a linked target hands to the targets that use it.
#[derive(Debug)]
pub(super) struct Linked {
    /// `(None, graph)` for a single result, `(Some(platform), graph)` per
    /// platform of a multi-platform one; `None` for an empty filesystem.
    graphs: Vec<(Option<String>, Option<pb::Definition>)>,
    /// The frontend's exporter metadata (image configs, build info).
    metadata: BTreeMap<String, bytes::Bytes>,
}

/// How far a linked target has got, as its dependents see it.
#[derive(Debug, Clone, Default)]
pub(super) enum Publication {
    #[default]
    Pending,
    Ready(Arc<Linked>),
    /// The target failed or was cancelled before its result existed.
    Failed,
}

/// Where a linked target announces its result.
pub(super) type Publisher = Arc<watch::Sender<Publication>>;

/// Marks `publisher` failed unless the target already published.
pub(super) fn mark_failed(publisher: &Publisher) {
    publisher.send_if_modified(|state| match state {
        Publication::Pending => {
            *state = Publication::Failed;
            true
        }
        _ => false,
    });
}

/// Waits for the target behind `publisher` to publish; `None` if it failed.
pub(super) async fn wait_for(publisher: &Publisher) -> Option<Arc<Linked>> {
    let mut receiver = publisher.subscribe();
    let state = receiver.wait_for(|state| !matches!(state, Publication::Pending)).await.ok()?;
    match &*state {
        Publication::Ready(linked) => Some(linked.clone()),
        _ => None,
    }
}

/// A daemon frontend run through the gateway, with linked targets' graphs
/// as inputs and, for a target others use, its result published to them.
pub(super) struct LinkedFrontend {
    frontend: String,
    attrs: BTreeMap<String, String>,
    inputs: BTreeMap<String, pb::Definition>,
    /// Set when other targets use this one.
    publisher: Option<Publisher>,
    /// One token per dependent target, cancelled when its build has ended.
    dependents: Vec<CancellationToken>,
}

impl LinkedFrontend {
    /// `attrs` are the frontend's attributes; `contexts` the named contexts
    /// that are other targets' results: `(context name, input key, result)`.
    pub(super) fn new(
        frontend: String,
        mut attrs: BTreeMap<String, String>,
        contexts: Vec<(String, String, Arc<Linked>)>,
        publisher: Option<Publisher>,
        dependents: Vec<CancellationToken>,
    ) -> Self {
        let mut inputs = BTreeMap::new();
        for (context, key, linked) in contexts {
            add_input(&mut attrs, &mut inputs, &context, &key, &linked);
        }
        LinkedFrontend { frontend, attrs, inputs, publisher, dependents }
    }
}

/// The attributes and inputs buildx's `waitContextDeps` gives a dependent
/// for the named context `context` = the result `linked`, keyed `key`.
fn add_input(
    attrs: &mut BTreeMap<String, String>,
    inputs: &mut BTreeMap<String, pb::Definition>,
    context: &str,
    key: &str,
    linked: &Linked,
) {
    let attr = format!("context:{context}");
    for (platform, graph) in &linked.graphs {
        // An empty filesystem is the empty graph (llb.Scratch()).
        let graph = graph.clone().unwrap_or_default();
        let (input, attr, config, buildinfo) = match platform {
            None => (key.to_string(), attr.clone(), CONFIG.to_string(), BUILDINFO.to_string()),
            Some(platform) => (
                format!("{key}::{platform}"),
                format!("{attr}::{platform}"),
                format!("{CONFIG}/{platform}"),
                format!("{BUILDINFO}/{platform}"),
            ),
        };
        inputs.insert(input.clone(), graph);
        attrs.insert(attr, format!("input:{input}"));
        // Go marshals map[string][]byte: keys sorted, values base64.
        let mut metadata = BTreeMap::new();
        for (from, to) in [(config, CONFIG), (buildinfo, BUILDINFO)] {
            if let Some(value) = linked.metadata.get(&from) {
                use base64::Engine;
                metadata.insert(to, base64::engine::general_purpose::STANDARD.encode(value));
            }
        }
        if !metadata.is_empty() {
            let json = serde_json::to_string(&metadata).expect("a map of strings serializes");
            attrs.insert(format!("input-metadata:{input}"), json);
        }
    }
    // A multi-platform result replaces the context by one per platform.
    if linked.graphs.iter().any(|(platform, _)| platform.is_some()) {
        attrs.remove(&attr);
    }
}

const CONFIG: &str = "containerimage.config";
const BUILDINFO: &str = "containerimage.buildinfo";

#[tonic::async_trait]
impl ClientFrontend for LinkedFrontend {
    async fn build(&self, gateway: &Gateway) -> Result<FrontendOutput, FrontendError> {
        let mut attrs = self.attrs.clone();
        // A daemon frontend reads the cache imports from its options.
        if !gateway.cache_imports().is_empty() {
            attrs.insert("cache-imports".into(), crate::cache::imports_option(gateway.cache_imports()));
        }
        let output = gateway.forward_frontend_with_inputs(&self.frontend, attrs, self.inputs.clone()).await?;
        let Some(publisher) = &self.publisher else { return Ok(output) };
        let Some(result) = &output.forwarded else {
            return Err(FrontendError::new("the frontend's result cannot be handed to the targets that use it"));
        };
        let references = result.references();
        let graphs =
            references.iter().map(|(platform, r)| (platform.clone(), r.as_ref().and_then(|r| r.definition().cloned())));
        let linked = Linked { graphs: graphs.collect(), metadata: result.metadata().clone() };
        publisher.send_replace(Publication::Ready(Arc::new(linked)));
        // Built now, while the dependents solve the same graph.
        for reference in references.iter().filter_map(|(_, r)| r.as_ref()) {
            gateway.evaluate(reference).await?;
        }
        for dependent in &self.dependents {
            dependent.cancelled().await;
        }
        Ok(output)
    }

    fn solve_attrs(&self) -> BTreeMap<String, String> {
        self.attrs.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(name: &str) -> pb::Definition {
        pb::Definition { def: vec![name.as_bytes().to_vec().into()], ..Default::default() }
    }

    #[test]
    fn a_single_result_becomes_one_input_with_go_encoded_metadata() {
        let linked = Linked {
            graphs: vec![(None, Some(graph("base")))],
            metadata: [(CONFIG.to_string(), bytes::Bytes::from_static(b"{}")), ("other".into(), "x".into())].into(),
        };
        let mut attrs = BTreeMap::new();
        let mut inputs = BTreeMap::new();
        add_input(&mut attrs, &mut inputs, "base", "base", &linked);
        assert_eq!(attrs["context:base"], "input:base");
        assert_eq!(attrs["input-metadata:base"], r#"{"containerimage.config":"e30="}"#);
        assert_eq!(inputs["base"], graph("base"));
    }

    #[test]
    fn a_multi_platform_result_gives_one_context_per_platform() {
        let linked = Linked {
            graphs: vec![(Some("linux/amd64".into()), Some(graph("a"))), (Some("linux/arm64".into()), None)],
            metadata: [(format!("{CONFIG}/linux/arm64"), bytes::Bytes::from_static(b"{}"))].into(),
        };
        let mut attrs: BTreeMap<String, String> = [("context:base".to_string(), "target:base".to_string())].into();
        let mut inputs = BTreeMap::new();
        add_input(&mut attrs, &mut inputs, "base", "b", &linked);
        assert!(!attrs.contains_key("context:base"));
        assert_eq!(attrs["context:base::linux/amd64"], "input:b::linux/amd64");
        assert_eq!(attrs["context:base::linux/arm64"], "input:b::linux/arm64");
        assert_eq!(attrs["input-metadata:b::linux/arm64"], r#"{"containerimage.config":"e30="}"#);
        assert!(!attrs.contains_key("input-metadata:b::linux/amd64"));
        assert_eq!(inputs["b::linux/arm64"], pb::Definition::default());
    }
}
