//! Smoke test against the real kube-apiserver of the test environment: install a CRD, then
//! create, watch and delete an object of it.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use stackube_testenv::{TestEnv, unique_name};

const WAIT: Duration = Duration::from_secs(30);

/// A throw-away resource kind used only by this test. Its group sits under `kubernetes.io`, as
/// Stackube's own CRDs do (the seed's YAML uses `stackube.kubernetes.io`), so the test also
/// proves the apiserver accepts such a CRD with the approval annotation.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "smoke.testenv.stackube.kubernetes.io",
    version = "v1",
    kind = "Smoke",
    namespaced,
    annotation("api-approved.kubernetes.io", "unapproved, test-only resource")
)]
pub struct SmokeSpec {
    /// Something to round-trip.
    pub message: String,
}

#[tokio::test]
async fn crd_object_can_be_created_watched_and_deleted() {
    let env = TestEnv::get();
    let client = stackube_kube::client(Some(&env.kubeconfig))
        .await
        .expect("client from the test environment's kubeconfig");

    let crd = Smoke::crd();
    stackube_kube::apply_crd(&client, &crd, WAIT)
        .await
        .expect("CRD applied and established");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let served = crds.get(&crd.name_any()).await.expect("CRD readable");
    assert_eq!(served.spec.names.kind, "Smoke");

    let ns_name = unique_name("smoke");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(ns_name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");

    let smokes: Api<Smoke> = Api::namespaced(client.clone(), &ns_name);
    // Start watching before creating, so the test sees the object's whole life.
    let mut events = watcher::watcher(smokes.clone(), watcher::Config::default()).boxed();
    let first = tokio::time::timeout(WAIT, events.try_next())
        .await
        .expect("watch starts")
        .expect("watch stream ok");
    assert!(matches!(first, Some(Event::Init)), "got {first:?}");

    let object = Smoke::new(
        "hello",
        SmokeSpec {
            message: "from stackube".into(),
        },
    );
    let created = smokes
        .create(&PostParams::default(), &object)
        .await
        .expect("object created");
    assert!(created.metadata.uid.is_some());

    let seen = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.try_next().await.expect("watch stream ok") {
            if let Event::Apply(obj) | Event::InitApply(obj) = event
                && obj.name_any() == "hello"
            {
                return obj;
            }
        }
        panic!("watch ended before the object was seen");
    })
    .await
    .expect("the watch reports the created object");
    assert_eq!(seen.spec.message, "from stackube");
    assert_eq!(seen.metadata.uid, created.metadata.uid);

    smokes
        .delete("hello", &DeleteParams::default())
        .await
        .expect("object deleted");
    let deleted = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.try_next().await.expect("watch stream ok") {
            if let Event::Delete(obj) = event {
                return obj;
            }
        }
        panic!("watch ended before the deletion was seen");
    })
    .await
    .expect("the watch reports the deletion");
    assert_eq!(deleted.name_any(), "hello");
    assert!(
        smokes.get_opt("hello").await.expect("get works").is_none(),
        "the object is gone"
    );

    namespaces
        .delete(&ns_name, &DeleteParams::default())
        .await
        .expect("namespace deleted");
    // Leave the apiserver as the test found it.
    crds.delete(&crd.name_any(), &DeleteParams::default())
        .await
        .expect("CRD deleted");
}
