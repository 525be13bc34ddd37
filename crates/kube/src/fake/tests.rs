//! The fake against kube-rs itself: every test goes through a real `kube::Client`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use stackube_model::crd::{Network, NetworkSpec, NetworkState, NetworkStatus, Tenant, TenantSpec};

use super::FakeApiServer;

const FINALIZER: &str = "stackube.kubernetes.io/test";

fn secret(namespace: &str, name: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([("app".into(), name.into())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".into(),
            ByteString(b"hunter2".to_vec()),
        )])),
        ..Default::default()
    }
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn network(namespace: &str, name: &str) -> Network {
    let mut network = Network::new(
        name,
        NetworkSpec {
            cidr: "10.0.0.0/24".into(),
            gateway: "10.0.0.1".into(),
            network_id: None,
        },
    );
    network.metadata.namespace = Some(namespace.into());
    network
}

fn code(error: &kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("not an API error: {other}"),
    }
}

/// CRD types have no `PartialEq`: compare what the apiserver would send.
fn as_json(object: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(object).expect("serializes")
}

fn apply() -> PatchParams {
    PatchParams::apply("test").force()
}

#[tokio::test]
async fn create_fills_in_metadata_and_get_finds_what_was_created() {
    let fake = FakeApiServer::new();
    let api: Api<Secret> = Api::namespaced(fake.client(), "t");
    let created = api
        .create(&PostParams::default(), &secret("t", "s"))
        .await
        .expect("created");
    let other = api
        .create(&PostParams::default(), &secret("t", "other"))
        .await
        .expect("created");
    let uid = created.uid().expect("a uid");
    assert!(!uid.is_empty());
    assert_ne!(other.uid(), created.uid());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.namespace().as_deref(), Some("t"));
    let (v1, v2): (u64, u64) = (
        created
            .resource_version()
            .expect("rv")
            .parse()
            .expect("a number"),
        other
            .resource_version()
            .expect("rv")
            .parse()
            .expect("a number"),
    );
    assert!(v2 > v1);

    let got = api.get("s").await.expect("found");
    assert_eq!(got, created);
    assert_eq!(got.data, secret("t", "s").data);
    assert_eq!(fake.get::<Secret>(Some("t"), "s"), Some(created));

    // Elsewhere, nothing.
    assert_eq!(api.get_opt("missing").await.expect("an answer"), None);
    let elsewhere: Api<Secret> = Api::namespaced(fake.client(), "u");
    assert_eq!(elsewhere.get_opt("s").await.expect("an answer"), None);
    let missing = api.get("missing").await.expect_err("not found");
    assert_eq!(code(&missing), (404, "NotFound".into()));

    let again = api
        .create(&PostParams::default(), &secret("t", "s"))
        .await
        .expect_err("exists");
    assert_eq!(code(&again), (409, "AlreadyExists".into()));
}

#[tokio::test]
async fn lists_are_lists_of_the_kind_and_honour_label_selectors() {
    let fake = FakeApiServer::new();
    fake.put(&secret("a", "one"));
    fake.put(&secret("b", "two"));
    fake.put(&namespace("a", &[]));
    let all: Api<Secret> = Api::all(fake.client());
    let names = |list: kube::core::ObjectList<Secret>| {
        list.items
            .iter()
            .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()))
            .collect::<Vec<_>>()
    };
    let list = all.list(&ListParams::default()).await.expect("listed");
    assert_eq!(list.types.kind, "SecretList");
    assert!(list.metadata.resource_version.is_some());
    assert_eq!(names(list), ["a/one", "b/two"]);
    let selected = all
        .list(&ListParams::default().labels("app=two"))
        .await
        .expect("listed");
    assert_eq!(names(selected), ["b/two"]);
    let in_a: Api<Secret> = Api::namespaced(fake.client(), "a");
    let list = in_a.list(&ListParams::default()).await.expect("listed");
    assert_eq!(names(list), ["a/one"]);
    let empty: Api<Tenant> = Api::all(fake.client());
    assert!(
        empty
            .list(&ListParams::default())
            .await
            .expect("listed")
            .items
            .is_empty()
    );
    // Watches are not served.
    let watch = in_a
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .err();
    let watch_failed = match watch {
        Some(e) => code(&e).0 == 405,
        None => false,
    };
    assert!(watch_failed, "a watch must fail");
}

#[tokio::test]
async fn server_side_apply_creates_then_updates_in_place() {
    let fake = FakeApiServer::new();
    let api: Api<Namespace> = Api::all(fake.client());
    let created = api
        .patch(
            "t",
            &apply(),
            &Patch::Apply(namespace("t", &[("tenant", "t")])),
        )
        .await
        .expect("created by apply");
    assert!(created.uid().is_some());
    assert_eq!(
        created.status.clone().and_then(|s| s.phase).as_deref(),
        Some("Active")
    );
    assert_eq!(
        created.spec.clone().and_then(|s| s.finalizers),
        Some(vec!["kubernetes".to_owned()])
    );

    let updated = api
        .patch(
            "t",
            &apply(),
            &Patch::Apply(namespace("t", &[("tenant", "t"), ("project", "p1")])),
        )
        .await
        .expect("updated by apply");
    assert_eq!(updated.uid(), created.uid());
    assert_eq!(
        updated.labels().get("project").map(String::as_str),
        Some("p1")
    );
    assert_eq!(
        updated.labels().get("tenant").map(String::as_str),
        Some("t")
    );
    assert_ne!(updated.resource_version(), created.resource_version());

    // Applying the same again changes nothing, not even the resourceVersion.
    let same = api
        .patch(
            "t",
            &apply(),
            &Patch::Apply(namespace("t", &[("tenant", "t"), ("project", "p1")])),
        )
        .await
        .expect("applied");
    assert_eq!(same.resource_version(), updated.resource_version());
    assert_eq!(fake.list::<Namespace>().len(), 1);

    // Apply to the status of something missing is 404; a wrong kind is 400.
    let status = api
        .patch_status(
            "missing",
            &apply(),
            &Patch::Apply(namespace("missing", &[])),
        )
        .await
        .expect_err("not found");
    assert_eq!(code(&status).0, 404);
    let wrong = api
        .patch("t", &apply(), &Patch::Apply(secret("t", "t")))
        .await
        .expect_err("a Secret is not a Namespace");
    assert_eq!(code(&wrong).0, 400);
}

#[tokio::test]
async fn status_writes_change_only_status_and_object_writes_never_status() {
    let fake = FakeApiServer::new();
    let seeded = fake.put(&network("t", "n"));
    let api: Api<Network> = Api::namespaced(fake.client(), "t");

    let patched = api
        .patch_status(
            "n",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": {"cidr": "192.168.0.0/24"},
                "status": {"state": "Active", "networkID": "net-1"},
            })),
        )
        .await
        .expect("status patched");
    assert_eq!(patched.spec.cidr, "10.0.0.0/24");
    let status = patched.status.clone().expect("a status");
    assert_eq!(status.state, Some(NetworkState::Active));
    assert_eq!(status.network_id.as_deref(), Some("net-1"));
    assert_eq!(patched.metadata.generation, seeded.metadata.generation);

    let patched = api
        .patch(
            "n",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": {"cidr": "192.168.0.0/24"},
                "status": {"state": "Failed"},
            })),
        )
        .await
        .expect("object patched");
    assert_eq!(patched.spec.cidr, "192.168.0.0/24");
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.state),
        Some(NetworkState::Active)
    );
    assert_eq!(
        patched.metadata.generation,
        seeded.metadata.generation.map(|g| g + 1)
    );
    assert_eq!(
        fake.get::<Network>(Some("t"), "n").map(as_json),
        Some(as_json(patched.clone()))
    );

    // A label changes no generation; a merge patch null removes a field.
    let labelled = api
        .patch(
            "n",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .expect("labelled");
    assert_eq!(labelled.metadata.generation, patched.metadata.generation);
    let cleared = api
        .patch_status(
            "n",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"networkID": null}})),
        )
        .await
        .expect("cleared");
    let status = cleared.status.expect("a status");
    assert_eq!(status.network_id, None);
    assert_eq!(status.state, Some(NetworkState::Active));
}

#[tokio::test]
async fn create_drops_status_but_put_seeds_it() {
    let fake = FakeApiServer::new();
    let mut with_status = network("t", "n");
    with_status.status = Some(NetworkStatus {
        state: Some(NetworkState::Active),
        ..Default::default()
    });
    let api: Api<Network> = Api::namespaced(fake.client(), "t");
    let created = api
        .create(&PostParams::default(), &with_status)
        .await
        .expect("created");
    assert_eq!(created.status, None);
    with_status.metadata.name = Some("seeded".into());
    let seeded = fake.put(&with_status);
    assert_eq!(seeded.status, with_status.status);
    assert!(seeded.uid().is_some());
    assert_eq!(
        api.get("seeded").await.expect("found").status,
        with_status.status
    );
}

#[tokio::test]
async fn the_finalizer_helper_adds_and_removes_its_finalizer_across_a_delete() {
    let fake = FakeApiServer::new();
    // Someone else's finalizer too, so that the helper's index arithmetic is exercised.
    let mut seeded = network("t", "n");
    seeded.metadata.finalizers = Some(vec!["other.example.com/keep".into()]);
    fake.put(&seeded);
    let api: Api<Network> = Api::namespaced(fake.client(), "t");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reconcile = |network: Network| {
        let seen = Arc::clone(&seen);
        let api = api.clone();
        async move {
            finalizer(&api, FINALIZER, Arc::new(network), |event| async move {
                let what = match event {
                    Event::Apply(_) => "apply",
                    Event::Cleanup(_) => "cleanup",
                };
                seen.lock().expect("not poisoned").push(what);
                Ok::<_, Infallible>(Action::await_change())
            })
            .await
        }
    };
    let current = || api.get("n");

    reconcile(current().await.expect("found"))
        .await
        .expect("finalizer added");
    let with_finalizer = current().await.expect("found");
    assert_eq!(
        with_finalizer.finalizers(),
        ["other.example.com/keep", FINALIZER]
    );
    reconcile(with_finalizer).await.expect("applied");
    assert_eq!(*seen.lock().expect("not poisoned"), ["apply"]);

    let deleting = api
        .delete("n", &DeleteParams::background())
        .await
        .expect("deleted")
        .left()
        .expect("the object stays while finalizers hold it");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    reconcile(current().await.expect("still there"))
        .await
        .expect("cleaned up");
    assert_eq!(*seen.lock().expect("not poisoned"), ["apply", "cleanup"]);
    let left = current().await.expect("the other finalizer holds it");
    assert_eq!(left.finalizers(), ["other.example.com/keep"]);

    // The other controller finishes: the last finalizer gone, the object is gone.
    api.patch(
        "n",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("finalizer removed");
    assert!(api.get_opt("n").await.expect("an answer").is_none());
    assert!(fake.get::<Network>(Some("t"), "n").is_none());
}

#[tokio::test]
async fn the_finalizer_helper_works_on_an_object_without_finalizers() {
    let fake = FakeApiServer::new();
    fake.put(&Tenant::new("a", TenantSpec::default()));
    let api: Api<Tenant> = Api::all(fake.client());
    let run = |tenant: Tenant| {
        let api = api.clone();
        async move {
            finalizer(&api, FINALIZER, Arc::new(tenant), |_| async {
                Ok::<_, Infallible>(Action::await_change())
            })
            .await
        }
    };
    run(api.get("a").await.expect("found"))
        .await
        .expect("finalizer added");
    assert_eq!(api.get("a").await.expect("found").finalizers(), [FINALIZER]);
    api.delete("a", &DeleteParams::default())
        .await
        .expect("deleting");
    run(api.get("a").await.expect("found"))
        .await
        .expect("finalizer removed");
    assert!(api.get_opt("a").await.expect("an answer").is_none());
    // The patches it sent were JSON patches with tests.
    let patches = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PATCH /apis/stackube.kubernetes.io/v1/tenants/a"))
        .count();
    assert_eq!(patches, 2);
}

#[tokio::test]
async fn a_finalizer_patch_from_a_stale_copy_fails_its_test_and_changes_nothing() {
    let fake = FakeApiServer::new();
    let stale = fake.put(&network("t", "n"));
    // Meanwhile someone else added a finalizer.
    let mut current = stale.clone();
    current.metadata.finalizers = Some(vec!["other.example.com/keep".into()]);
    let current = fake.put(&current);
    let api: Api<Network> = Api::namespaced(fake.client(), "t");
    let result = finalizer(&api, FINALIZER, Arc::new(stale), |_| async {
        Ok::<_, Infallible>(Action::await_change())
    })
    .await;
    match result {
        Err(kube::runtime::finalizer::Error::AddFinalizer(e)) => {
            assert_eq!(code(&e), (422, "Invalid".into()));
        }
        other => panic!("the JSON patch test must fail: {other:?}"),
    }
    assert_eq!(
        fake.get::<Network>(Some("t"), "n").map(as_json),
        Some(as_json(current))
    );
}

#[tokio::test]
async fn raw_json_patches_replace_and_remove() {
    let fake = FakeApiServer::new();
    fake.put(&network("t", "n"));
    let request = |patch: serde_json::Value| {
        http::Request::patch("/apis/stackube.kubernetes.io/v1/namespaces/t/networks/n")
            .header(http::header::CONTENT_TYPE, "application/json-patch+json")
            .body(serde_json::to_vec(&patch).expect("serializes"))
            .expect("a request")
    };
    let patched: Network = fake
        .client()
        .request(request(json!([
            {"op": "replace", "path": "/spec/cidr", "value": "10.1.0.0/24"},
            {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
        ])))
        .await
        .expect("patched");
    assert_eq!(patched.spec.cidr, "10.1.0.0/24");
    assert_eq!(patched.metadata.generation, Some(2));
    let removed: Network = fake
        .client()
        .request(request(
            json!([{"op": "remove", "path": "/metadata/labels/a"}]),
        ))
        .await
        .expect("patched");
    assert!(removed.labels().is_empty());
    let failed = fake
        .client()
        .request::<Network>(request(json!([{"op": "remove", "path": "/spec/nope"}])))
        .await
        .expect_err("nothing to remove");
    assert_eq!(code(&failed).0, 422);
}

#[tokio::test]
async fn delete_removes_an_object_without_finalizers_at_once() {
    let fake = FakeApiServer::new();
    fake.put(&secret("t", "s"));
    let api: Api<Secret> = Api::namespaced(fake.client(), "t");
    let status = api
        .delete("s", &DeleteParams::default())
        .await
        .expect("deleted")
        .right()
        .expect("a Status when the object is gone");
    assert_eq!(
        status.details.map(|d| d.name).as_deref(),
        Some("s"),
        "the Status names what was deleted"
    );
    assert_eq!(api.get_opt("s").await.expect("an answer"), None);
    let again = api
        .delete("s", &DeleteParams::default())
        .await
        .expect_err("gone");
    assert_eq!(code(&again).0, 404);
}

#[tokio::test]
async fn delete_preconditions_and_stale_writes_are_conflicts() {
    let fake = FakeApiServer::new();
    let seeded = fake.put(&secret("t", "s"));
    let api: Api<Secret> = Api::namespaced(fake.client(), "t");
    let mut stale = seeded.clone();
    stale.metadata.resource_version = Some("1".into());
    api.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .expect("patched");
    let replaced = api
        .replace("s", &PostParams::default(), &seeded)
        .await
        .expect_err("stale");
    assert_eq!(code(&replaced), (409, "Conflict".into()));
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let deleted = api.delete("s", &params).await.expect_err("wrong uid");
    assert_eq!(code(&deleted).0, 409);
    assert!(fake.get::<Secret>(Some("t"), "s").is_some());
}

#[tokio::test]
async fn a_deleting_object_takes_no_new_finalizers() {
    let fake = FakeApiServer::new();
    let mut seeded = network("t", "n");
    seeded.metadata.finalizers = Some(vec!["a".into()]);
    fake.put(&seeded);
    let api: Api<Network> = Api::namespaced(fake.client(), "t");
    api.delete("n", &DeleteParams::default())
        .await
        .expect("deleting");
    let added = api
        .patch(
            "n",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["a", "b"]}})),
        )
        .await
        .expect_err("no new finalizers");
    assert_eq!(code(&added).0, 422);
    // Deleting again is answered with the object, still there.
    let again = api
        .delete("n", &DeleteParams::default())
        .await
        .expect("answered")
        .left()
        .expect("the object");
    assert_eq!(again.finalizers(), ["a"]);
}

#[tokio::test]
async fn a_deleted_namespace_is_terminating_until_removed() {
    let fake = FakeApiServer::new();
    let namespaces: Api<Namespace> = Api::all(fake.client());
    namespaces
        .create(&PostParams::default(), &namespace("t", &[]))
        .await
        .expect("created");
    fake.put(&secret("t", "s"));
    let terminating = namespaces
        .delete("t", &DeleteParams::background())
        .await
        .expect("deleting")
        .left()
        .expect("a namespace is kept while it terminates");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    let got = namespaces.get("t").await.expect("still there");
    assert!(got.metadata.deletion_timestamp.is_some());

    // Nothing new in a terminating namespace; other namespaces are fine.
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "t");
    let refused = secrets
        .create(&PostParams::default(), &secret("t", "new"))
        .await
        .expect_err("terminating");
    assert_eq!(code(&refused), (403, "Forbidden".into()));
    Api::<Secret>::namespaced(fake.client(), "u")
        .create(&PostParams::default(), &secret("u", "new"))
        .await
        .expect("created elsewhere");

    fake.remove::<Namespace>(None, "t");
    assert_eq!(namespaces.get_opt("t").await.expect("an answer"), None);
    assert_eq!(
        fake.get::<Secret>(Some("t"), "s"),
        None,
        "its content goes too"
    );
    assert!(fake.get::<Secret>(Some("u"), "new").is_some());
}

#[tokio::test]
async fn events_published_by_the_recorder_are_stored_in_order() {
    let fake = FakeApiServer::new();
    let recorder = Recorder::new(
        fake.client(),
        Reporter {
            controller: "stackube".into(),
            instance: Some("test".into()),
        },
    );
    let network = fake.put(&network("t", "n"));
    let tenant = fake.put(&Tenant::new("a", TenantSpec::default()));
    let event = |reason: &str| KubeEvent {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(format!("{reason} happened")),
        action: "Create".into(),
        secondary: None,
    };
    recorder
        .publish(&event("NetworkCreated"), &network.object_ref(&()))
        .await
        .expect("published");
    recorder
        .publish(&event("Ready"), &tenant.object_ref(&()))
        .await
        .expect("published");
    recorder
        .publish(&event("NetworkCreated"), &network.object_ref(&()))
        .await
        .expect("published again");

    let events = fake.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["reason"], "NetworkCreated");
    assert_eq!(events[0]["note"], "NetworkCreated happened");
    assert_eq!(events[0]["metadata"]["namespace"], "t");
    assert_eq!(events[0]["regarding"]["name"], "n");
    assert_eq!(events[0]["regarding"]["kind"], "Network");
    assert_eq!(events[0]["reportingController"], "stackube");
    assert_eq!(
        events[0]["series"]["count"], 2,
        "the repeat is counted on the first Event"
    );
    assert_eq!(events[1]["reason"], "Ready");
    assert_eq!(events[1]["type"], "Normal");
    // A cluster-scoped object's Events go to `default`.
    assert_eq!(events[1]["metadata"]["namespace"], "default");
}

#[tokio::test]
async fn injected_faults_fail_the_nth_matching_request_without_changing_state() {
    let fake = FakeApiServer::new();
    let api: Api<Namespace> = Api::all(fake.client());
    fake.fail_nth("patch", "/api/v1/namespaces/t", 1, 500);
    fake.fail_nth("GET", "/api/v1/namespaces/t", 2, 409);
    let failed = api
        .patch("t", &apply(), &Patch::Apply(namespace("t", &[])))
        .await
        .expect_err("injected");
    assert_eq!(code(&failed), (500, "InternalError".into()));
    assert_eq!(fake.get::<Namespace>(None, "t"), None);
    api.patch("t", &apply(), &Patch::Apply(namespace("t", &[])))
        .await
        .expect("the fault fired once");

    api.get("t").await.expect("the first GET passes");
    let conflict = api.get("t").await.expect_err("the second fails");
    assert_eq!(code(&conflict), (409, "Conflict".into()));
    api.get("t").await.expect("and only that one");

    let requests = fake.requests();
    assert_eq!(requests.len(), 5);
    assert!(requests[0].starts_with("PATCH /api/v1/namespaces/t?"));
    assert!(requests[0].contains("fieldManager=test"));
    assert!(requests[1].starts_with("PATCH /api/v1/namespaces/t?"));
    assert_eq!(requests[2..], ["GET /api/v1/namespaces/t"; 3]);
}

#[tokio::test]
async fn generate_name_and_dry_run_are_honoured() {
    let fake = FakeApiServer::new();
    let api: Api<Secret> = Api::namespaced(fake.client(), "t");
    let mut template = secret("t", "unused");
    template.metadata.name = None;
    template.metadata.generate_name = Some("s-".into());
    let first = api
        .create(&PostParams::default(), &template)
        .await
        .expect("created");
    let second = api
        .create(&PostParams::default(), &template)
        .await
        .expect("created");
    assert!(first.name_any().starts_with("s-") && first.name_any().len() == 7);
    assert_ne!(first.name_any(), second.name_any());

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry, &secret("t", "dry"))
        .await
        .expect("a dry run answers");
    assert_eq!(fake.get::<Secret>(Some("t"), "dry"), None);
    assert_eq!(fake.list::<Secret>().len(), 2);
}

#[tokio::test]
async fn metadata_calls_replace_status_and_delete_collection_work() {
    let fake = FakeApiServer::new();
    fake.put(&secret("t", "a"));
    fake.put(&secret("t", "b"));
    let mut held = secret("t", "c");
    held.metadata.finalizers = Some(vec!["x".into()]);
    fake.put(&held);
    let api: Api<Secret> = Api::namespaced(fake.client(), "t");
    let meta = api.get_metadata("a").await.expect("found");
    assert_eq!(meta.labels().get("app").map(String::as_str), Some("a"));
    let metas = api
        .list_metadata(&ListParams::default())
        .await
        .expect("listed");
    assert_eq!(metas.items.len(), 3);

    let networks: Api<Network> = Api::namespaced(fake.client(), "t");
    let mut seeded = fake.put(&network("t", "n"));
    seeded.spec.cidr = "10.9.0.0/24".into();
    seeded.status = Some(NetworkStatus {
        message: Some("replaced".into()),
        ..Default::default()
    });
    let replaced = networks
        .replace_status("n", &PostParams::default(), &seeded)
        .await
        .expect("status replaced");
    assert_eq!(replaced.spec.cidr, "10.0.0.0/24", "only status changes");
    assert_eq!(
        replaced.status.and_then(|s| s.message).as_deref(),
        Some("replaced")
    );

    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app in (a,c)"),
        )
        .await
        .expect("deleted")
        .left()
        .expect("the list of what was deleted");
    assert_eq!(deleted.items.len(), 2);
    let left: Vec<String> = fake.list::<Secret>().iter().map(|s| s.name_any()).collect();
    assert_eq!(left, ["b", "c"], "c stays, held by its finalizer");
    assert!(
        fake.get::<Secret>(Some("t"), "c")
            .and_then(|s| s.metadata.deletion_timestamp)
            .is_some()
    );
}
