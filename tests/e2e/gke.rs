//! The GKE executor end to end: the real intake, the real store, the runner, the real `kube`
//! client over TLS and the real Container API client, against the stateful FAKE kube-apiserver
//! and FAKE Container API in `riposte_e2e::fake_gke` (and the fake Compute Engine for the VM
//! steps). No GKE emulator exists; every test name says what it ran against.
//!
//! The alert is the real Falcosidekick fixture with its `hostname` removed: it names only the pod
//! (namespace, name, cluster, project, location), so the node and the VM come from the cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use riposte_cloud::backoff::Backoff;
use riposte_cloud::compute::{ComputeExecutor, ComputeSettings, RetryBudget};
use riposte_cloud::evidence::EvidenceBucket;
use riposte_cloud::executor::GoogleCloudExecutor;
use riposte_cloud::gke::{GkeExecutor, GkeSettings, KubeLocator, KubeToken};
use riposte_core::action::{Action, ActionClass, TargetKind};
use riposte_core::admission::{Admission, AdmissionParts};
use riposte_core::executor::Executor;
use riposte_core::incident::{Incident, StepStatus};
use riposte_core::kubernetes::{
    CORDONED_BY, INCIDENT_LABEL, ISOLATE_LABEL, PROTECTED_BY, SCALE_DOWN_DISABLED, isolation_policy_name,
};
use riposte_core::notify::Notifiers;
use riposte_core::policy::PolicySet;
use riposte_core::release::release;
use riposte_core::requests::incident_label;
use riposte_core::runner::{Runner, StepScope};
use riposte_core::sources::SourceKind;
use riposte_core::store::{EmbeddedStore, Store};
use riposte_e2e::fake_compute::FakeCompute;
use riposte_e2e::fake_gcs::FakeGcs;
use riposte_e2e::fake_gke::{ContainerLogs, DeletionCause, EventSpec, FakeGke, NodeSpec, PodSpec, WorkloadSpec};
use riposte_e2e::scenario::{NODE, PROJECT, ZONE, three_disk_vm};
use serde_json::Value;

use crate::helpers::{approve_as_alice, fixture};
use crate::planned::{Sent, assert_every_change_is_one_of};

const LOCATION: &str = "europe-west1";
const CLUSTER: &str = "prod-eu";
const NS: &str = "shop";
/// The pod the Falco fixture names.
const POD: &str = "api-7d9f8b6c5-x2lqp";

fn policy(actions: &[&str], on_approval: &[&str], dry_run: bool) -> String {
    let mut yaml = format!(
        "version: 1\nnotifiers: {{console: {{type: console}}}}\npolicies:\n  - name: pod-containment\n    match: {{sources: [falco], severity: \">= critical\"}}\n    dry_run: {dry_run}\n    actions: [{}]\n",
        actions.join(", ")
    );
    if !on_approval.is_empty() {
        yaml.push_str(&format!(
            "    on_approval: [{}]\n    approval: {{expires_in: 30m, required: 1}}\n",
            on_approval.join(", ")
        ));
    }
    yaml
}

/// The Falco fixture without `hostname`: it names the pod only.
fn pod_only_alert() -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture("falco/drop-exec-sidekick-customfields.json")).expect("json");
    v.as_object_mut().expect("object").remove("hostname");
    serde_json::to_vec(&v).expect("json")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    gke: FakeGke,
    compute: FakeCompute,
    /// The evidence bucket's server, for `collect_evidence` ([`harness_with_evidence`]).
    gcs: Option<FakeGcs>,
    executor: Arc<dyn Executor>,
    locator: Arc<KubeLocator>,
}

fn budget() -> RetryBudget {
    RetryBudget {
        backoff: Backoff { initial: Duration::from_millis(5), max: Duration::from_millis(50) },
        total: Duration::from_secs(10),
        attempt_timeout: Duration::from_secs(10),
    }
}

/// The evidence bucket of the tests.
const BUCKET: &str = "shop-evidence";

/// The cluster: the node (the fixture's VM, in the fake Compute too), the Deployment → ReplicaSet
/// → pod the alert names, and the pods a drain must handle.
async fn harness() -> Harness {
    harness_with(None).await
}

/// The same, with fake-gcs-server holding [`BUCKET`] for `collect_evidence`.
async fn harness_with_evidence() -> Harness {
    harness_with(Some(FakeGcs::start(&[BUCKET]).await)).await
}

async fn harness_with(gcs: Option<FakeGcs>) -> Harness {
    let gke = FakeGke::start(PROJECT, LOCATION, CLUSTER).await;
    gke.add_node(NodeSpec {
        name: NODE.into(),
        provider_id: format!("gce://{PROJECT}/{ZONE}/{NODE}"),
        ..NodeSpec::default()
    });
    gke.add_workload(WorkloadSpec { kind: "Deployment".into(), namespace: NS.into(), name: "api".into(), owner: None });
    gke.add_workload(WorkloadSpec {
        kind: "ReplicaSet".into(),
        namespace: NS.into(),
        name: "api-7d9f8b6c5".into(),
        owner: Some(("Deployment".into(), "api".into())),
    });
    gke.add_pod(PodSpec {
        namespace: NS.into(),
        name: POD.into(),
        node: NODE.into(),
        labels: labels(&[("app", "api")]),
        owner: Some(("ReplicaSet".into(), "api-7d9f8b6c5".into())),
        mirror: false,
    });
    let compute = FakeCompute::start().await;
    compute.add_instance(three_disk_vm(NODE, 7052018843299811234));

    let anonymous = || Some(google_cloud_auth::credentials::anonymous::Builder::new().build());
    let compute_exec = ComputeExecutor::new(
        ComputeSettings { endpoint: compute.url(), retry: budget(), operation_deadline: Duration::from_secs(20) },
        anonymous(),
    )
    .await
    .expect("compute executor");
    let settings = GkeSettings {
        container_endpoint: gke.container_endpoint(),
        prefer_private_endpoint: false,
        retry: budget(),
        eviction_patience: Duration::from_millis(1500),
        eviction_retry_every: Duration::from_millis(100),
    };
    let retry = settings.retry;
    let mut gke_exec =
        GkeExecutor::new(settings, anonymous(), KubeToken::Fixed("test-token".into())).await.expect("gke");
    if let Some(gcs) = &gcs {
        let bucket = EvidenceBucket::new(&gcs.endpoint, anonymous(), retry).await.expect("storage client");
        gke_exec = gke_exec.with_evidence(bucket);
    }
    let locator = Arc::new(gke_exec.locator());
    let executor: Arc<dyn Executor> = Arc::new(GoogleCloudExecutor::new(compute_exec, gke_exec));
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    Harness { _dir: dir, store, gke, compute, gcs, executor, locator }
}

impl Harness {
    /// Approves incident `id`'s gated steps as alice, runs every step that can run, and reads it.
    async fn approve_and_run(&self, id: &str) -> Incident {
        self.approve(id).await;
        self.runner().run(id).await.expect("run");
        self.get(id).await
    }

    /// A pod on the node, under a controller of its own (`kind`, `name`) with no owner above it.
    fn add_controlled_pod(&self, pod: &str, (kind, name): (&str, &str)) {
        self.gke.add_workload(WorkloadSpec { kind: kind.into(), namespace: NS.into(), name: name.into(), owner: None });
        self.gke.add_pod(PodSpec {
            namespace: NS.into(),
            name: pod.into(),
            node: NODE.into(),
            owner: Some((kind.into(), name.into())),
            ..PodSpec::default()
        });
    }

    /// Intake of `body` under `policy_yaml`, with the cluster lookup; returns the incident id.
    async fn intake(&self, policy_yaml: &str, body: &[u8]) -> String {
        let policies = PolicySet::from_yaml(policy_yaml).expect("policy");
        let alerts = SourceKind::Falco.parse(body, &http::HeaderMap::new()).expect("parse");
        // The incident is admitted as intake does, but its steps are left for the test's runner:
        // admission's runner runs only approved steps (there are none yet), and is settled below.
        let idle = Runner::new(self.store.clone(), self.executor.clone(), Notifiers::none(), "gke-intake".into())
            .with_scope(StepScope::Approved);
        let admission = Admission::new(AdmissionParts {
            policies: Arc::new(policies),
            store: self.store.clone(),
            locator: self.locator.clone() as Arc<dyn riposte_core::locate::Locator>,
            runner: idle.clone(),
            approval_links: None,
        });
        let outcomes = admission.admit(alerts, Timestamp::now()).await.expect("admit");
        assert_eq!(
            idle.settle(tokio::time::Instant::now() + Duration::from_secs(10)).await,
            0,
            "admission's run ended"
        );
        outcomes[0].incidents[0].incident_id.clone().expect("an incident")
    }

    fn runner(&self) -> Runner {
        Runner::new(self.store.clone(), self.executor.clone(), Notifiers::none(), "gke-test".into())
    }

    async fn get(&self, id: &str) -> Incident {
        self.store.get(id).await.expect("get").expect("incident")
    }

    async fn approve(&self, id: &str) {
        approve_as_alice(self.store.as_ref(), id).await;
    }

    fn pod_labels(&self, ns: &str, name: &str) -> Value {
        self.gke.pod(ns, name).expect("pod")["metadata"]["labels"].clone()
    }
}

fn status<'a>(incident: &'a Incident, action: &str) -> &'a StepStatus {
    &incident.steps.iter().find(|s| s.action.name() == action).expect("step").status
}

fn report(incident: &Incident, action: &str) -> String {
    let step = incident.steps.iter().find(|s| s.action.name() == action).expect("step");
    step.report.as_ref().map(|r| r.message.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_named_only_by_falco_is_located_and_contained_against_fake_gke_and_fake_compute() {
    let h = harness().await;
    let yaml =
        policy(&["snapshot_disks", "quarantine_instance", "cordon_node", "label_pod", "isolate_pod"], &[], false);
    let id = h.intake(&yaml, &pod_only_alert()).await;

    // The plan's targets are the objects in the cluster, with their UIDs.
    let planned = h.get(&id).await;
    let pod_uid = h.gke.pod(NS, POD).expect("pod")["metadata"]["uid"].as_str().expect("uid").to_string();
    let node_uid = h.gke.node(NODE).expect("node")["metadata"]["uid"].as_str().expect("uid").to_string();
    let targets: Vec<Value> = planned.steps.iter().map(|s| serde_json::to_value(&s.target).expect("target")).collect();
    assert_eq!(targets[0]["kind"], "instance");
    assert_eq!(
        (targets[0]["zone"].as_str(), targets[0]["name"].as_str()),
        (Some(ZONE), Some(NODE)),
        "VM from providerID"
    );
    assert_eq!((targets[2]["node"].as_str(), targets[2]["uid"].as_str()), (Some(NODE), Some(node_uid.as_str())));
    assert_eq!(targets[3]["uid"].as_str(), Some(pod_uid.as_str()));
    assert!(planned.journal.iter().any(|j| j.message.contains(&format!("pod uid {pod_uid}"))), "{:?}", planned.journal);

    assert_eq!(h.runner().run(&id).await.expect("run"), 5);
    let incident = h.get(&id).await;
    for s in &incident.steps {
        assert_eq!(s.status, StepStatus::Done, "{}: {:?}", s.action.name(), s.report);
    }
    // The node: cordoned and kept from cluster-autoscaler scale-down, saying by which incident,
    // in one patch conditional on the UID recorded at plan time.
    let node = h.gke.node(NODE).expect("node");
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_eq!(node["metadata"]["annotations"][CORDONED_BY].as_str(), Some(incident_label(&id).as_str()));
    assert_eq!(node["metadata"]["annotations"][SCALE_DOWN_DISABLED], "true");
    assert_eq!(node["metadata"]["annotations"][PROTECTED_BY].as_str(), Some(incident_label(&id).as_str()));
    let node_patches: Vec<_> =
        h.gke.mutations().into_iter().filter(|r| r.path == format!("/api/v1/nodes/{NODE}")).collect();
    assert_eq!(node_patches.len(), 1, "{node_patches:#?}");
    assert_eq!(node_patches[0].body.as_ref().map(|b| b["metadata"]["uid"].clone()), Some(node_uid.clone().into()));
    // The pod: labelled, its own labels kept, selected by a deny-all NetworkPolicy.
    let pod_labels = h.pod_labels(NS, POD);
    assert_eq!(pod_labels["app"], "api");
    assert_eq!(pod_labels["quarantine"], "true");
    assert_eq!(pod_labels[INCIDENT_LABEL].as_str(), Some(incident_label(&id).as_str()));
    assert_eq!(pod_labels[ISOLATE_LABEL].as_str(), Some(incident_label(&id).as_str()));
    let np = h.gke.network_policy(NS, &isolation_policy_name(&id)).expect("network policy");
    assert_eq!(np["spec"]["podSelector"]["matchLabels"][ISOLATE_LABEL].as_str(), Some(incident_label(&id).as_str()));
    assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    // The VM the pod runs on, resolved through the node: snapshotted and tagged.
    assert_eq!(h.compute.snapshots().len(), 3);
    let vm = h.compute.instance(PROJECT, ZONE, NODE).expect("vm");
    assert!(vm["tags"]["items"].as_array().expect("tags").iter().any(|t| t == "riposte-quarantine"));
    // What crossed the wire: the service account's token, merge patches with the UID preconditions.
    assert!(h.gke.tokens_seen().iter().all(|t| t == "test-token"));
    let patches: Vec<_> = h.gke.requests().into_iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 3, "cordon, label, isolation label: {patches:#?}");
    for p in &patches {
        assert_eq!(p.content_type.as_deref(), Some("application/merge-patch+json"));
        let uid = p.body.as_ref().expect("body")["metadata"]["uid"].as_str().map(String::from);
        assert!(uid == Some(pod_uid.clone()) || uid == Some(node_uid.clone()), "{p:?}");
    }
    assert_eq!(h.gke.container_requests().len(), 1, "one clusters.get; the client is cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_evicts_exactly_the_right_pods_and_retries_a_pdb_refusal_against_fake_gke() {
    let h = harness().await;
    h.gke.add_workload(WorkloadSpec {
        kind: "DaemonSet".into(),
        namespace: "kube-system".into(),
        name: "fluentbit".into(),
        owner: None,
    });
    let pod = |ns: &str, name: &str, owner: Option<(&str, &str)>, mirror: bool| PodSpec {
        namespace: ns.into(),
        name: name.into(),
        node: NODE.into(),
        labels: BTreeMap::new(),
        owner: owner.map(|(k, n)| (k.to_string(), n.to_string())),
        mirror,
    };
    h.gke.add_pod(pod("kube-system", "fluentbit-x1", Some(("DaemonSet", "fluentbit")), false));
    h.gke.add_pod(pod("kube-system", "kube-proxy-node", Some(("Node", NODE)), true));
    for rs in ["web-5f6d", "cart-8a9b"] {
        h.gke.add_workload(WorkloadSpec {
            kind: "ReplicaSet".into(),
            namespace: NS.into(),
            name: rs.into(),
            owner: None,
        });
    }
    h.gke.add_pod(pod(NS, "web-1", Some(("ReplicaSet", "web-5f6d")), false));
    h.gke.add_pod(pod(NS, "cart-1", Some(("ReplicaSet", "cart-8a9b")), false));
    h.gke.add_pod(pod(NS, "debug-shell", None, false));
    h.gke.add_pod(PodSpec { node: "another-node".into(), ..pod(NS, "elsewhere", None, false) });
    h.gke.block_eviction(NS, "cart-1", Some(3));

    let yaml = policy(&["label_pod"], &["drain_node: {grace_period_seconds: 7}"], false);
    let id = h.intake(&yaml, &pod_only_alert()).await;
    assert_eq!(h.runner().run(&id).await.expect("run"), 1, "the label first");
    h.approve(&id).await;
    assert_eq!(h.runner().run(&id).await.expect("run"), 1);
    let incident = h.get(&id).await;
    assert_eq!(*status(&incident, "drain_node"), StepStatus::Done, "{}", report(&incident, "drain_node"));

    // Evicted: the ordinary pods, the PDB-blocked one after its refusals. Kept: the DaemonSet pod,
    // the mirror pod, the quarantined pod (the evidence), the bare pod nothing would recreate, and
    // the pod on another node.
    let evictions: Vec<_> = h.gke.deletions().into_iter().filter(|d| d.cause == DeletionCause::Eviction).collect();
    let mut evicted: Vec<String> = evictions.iter().map(|d| format!("{}/{}", d.namespace, d.name)).collect();
    evicted.sort();
    assert_eq!(evicted, ["shop/cart-1", "shop/web-1"]);
    assert!(evictions.iter().all(|d| d.grace_period_seconds == Some(7)), "the policy's grace period: {evictions:?}");
    for sent in h.gke.requests().iter().filter(|r| r.path.ends_with("/eviction")) {
        let options = &sent.body.as_ref().expect("body")["deleteOptions"];
        assert!(options["preconditions"]["uid"].is_string(), "the UID precondition reaches the server: {sent:?}");
    }
    let left = h.gke.pods_on(NODE);
    assert_eq!(
        left,
        [
            ("kube-system".to_string(), "fluentbit-x1".to_string()),
            ("kube-system".into(), "kube-proxy-node".into()),
            (NS.into(), POD.into()),
            (NS.into(), "debug-shell".into())
        ]
    );
    assert!(h.gke.pod(NS, "elsewhere").is_some());
    let refusals = h.gke.requests().iter().filter(|r| r.path.ends_with("/cart-1/eviction") && r.status == 429).count();
    assert_eq!(refusals, 3);
    let message = report(&incident, "drain_node");
    assert!(message.contains("quarantined: shop/api-7d9f8b6c5-x2lqp"), "{message}");
    assert!(message.contains("DaemonSet pod: kube-system/fluentbit-x1"), "{message}");
    assert!(message.contains("no controller, not evicted (it would not be recreated): shop/debug-shell"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_reports_the_pods_a_pdb_keeps_refusing_against_fake_gke() {
    let h = harness().await;
    h.add_controlled_pod("web-1", ("ReplicaSet", "web-5f6d"));
    h.add_controlled_pod("db-0", ("StatefulSet", "db"));
    h.gke.block_eviction(NS, "db-0", None);
    let id = h.intake(&policy(&[], &["drain_node"], false), &pod_only_alert()).await;
    let incident = h.approve_and_run(&id).await;
    let StepStatus::Failed { error } = status(&incident, "drain_node") else {
        panic!("drain must fail naming the pod left: {:?}", status(&incident, "drain_node"))
    };
    assert!(
        error.contains("NOT evicted") && error.contains("shop/db-0") && error.contains("disruption budget"),
        "{error}"
    );
    assert!(error.contains("evicted: shop/api-7d9f8b6c5-x2lqp, shop/web-1"), "the others were evicted: {error}");
    assert!(h.gke.pod(NS, "db-0").is_some());
    assert!(h.gke.pod(NS, "web-1").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_workload_deletes_the_deployment_behind_the_pod_against_fake_gke() {
    let h = harness().await;
    h.gke.add_workload(WorkloadSpec {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "cart".into(),
        owner: None,
    });
    let id = h.intake(&policy(&[], &["delete_workload"], false), &pod_only_alert()).await;
    let incident = h.approve_and_run(&id).await;
    assert_eq!(*status(&incident, "delete_workload"), StepStatus::Done, "{}", report(&incident, "delete_workload"));
    assert!(report(&incident, "delete_workload").contains("deleted Deployment shop/api"));
    assert!(h.gke.workload("Deployment", NS, "api").is_none());
    assert!(h.gke.workload("ReplicaSet", NS, "api-7d9f8b6c5").is_none(), "its ReplicaSet went with it");
    assert!(h.gke.pod(NS, POD).is_none(), "and its pod");
    assert!(h.gke.workload("Deployment", NS, "cart").is_some(), "nothing else");
    let delete = h.gke.requests().into_iter().find(|r| r.method == "DELETE").expect("a delete");
    assert_eq!(delete.path, "/apis/apps/v1/namespaces/shop/deployments/api");
    let body = delete.body.expect("DeleteOptions");
    assert_eq!(body["propagationPolicy"], "Foreground");
    assert!(body["preconditions"]["uid"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_workload_refuses_kube_system_against_fake_gke() {
    let h = harness().await;
    h.gke.add_workload(WorkloadSpec {
        kind: "DaemonSet".into(),
        namespace: "kube-system".into(),
        name: "agent".into(),
        owner: None,
    });
    h.gke.add_pod(PodSpec {
        namespace: "kube-system".into(),
        name: "agent-x1".into(),
        node: NODE.into(),
        owner: Some(("DaemonSet".into(), "agent".into())),
        ..PodSpec::default()
    });
    let body = String::from_utf8(pod_only_alert())
        .expect("utf8")
        .replace(r#""k8s.ns.name":"shop""#, r#""k8s.ns.name":"kube-system""#)
        .replace(POD, "agent-x1");
    let id = h.intake(&policy(&[], &["delete_workload"], false), body.as_bytes()).await;
    let incident = h.get(&id).await;
    let StepStatus::Skipped { reason } = status(&incident, "delete_workload") else {
        panic!("refused at plan time: {:?}", status(&incident, "delete_workload"))
    };
    assert!(reason.contains("kube-system is protected"), "{reason}");
    assert!(incident.approval.is_none(), "nothing left to approve");
    h.runner().run(&id).await.expect("run");
    assert!(h.gke.workload("DaemonSet", "kube-system", "agent").is_some());
    assert!(h.gke.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_after_the_pod_was_recreated_changes_nothing_and_says_so_against_fake_gke() {
    let h = harness().await;
    let id = h.intake(&policy(&[], &["delete_pod", "delete_workload"], false), &pod_only_alert()).await;
    let new_uid = h.gke.recreate_pod(NS, POD);
    let incident = h.approve_and_run(&id).await;
    for action in ["delete_pod", "delete_workload"] {
        let StepStatus::Skipped { reason } = status(&incident, action) else {
            panic!("{action} must be skipped: {:?}", status(&incident, action))
        };
        assert!(reason.contains("re-created"), "{action}: {reason}");
    }
    assert_eq!(h.gke.pod(NS, POD).expect("the new pod")["metadata"]["uid"].as_str(), Some(new_uid.as_str()));
    assert!(h.gke.workload("Deployment", NS, "api").is_some());
    assert!(h.gke.deletions().is_empty(), "{:?}", h.gke.deletions());
    // The delete was sent with the recorded UID and refused by the API server.
    let refused = h.gke.requests().into_iter().find(|r| r.method == "DELETE").expect("the delete");
    assert_eq!(refused.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_uncordons_and_removes_the_labels_the_policy_and_the_tag_against_fake_gke_and_fake_compute() {
    let h = harness().await;
    let yaml = policy(
        &["label_instance", "quarantine_instance", "cordon_node", "label_pod", "isolate_pod"],
        &["drain_node"],
        false,
    );
    let id = h.intake(&yaml, &pod_only_alert()).await;
    assert_eq!(h.runner().run(&id).await.expect("run"), 5);
    h.gke.add_pod(PodSpec { namespace: NS.into(), name: "web-1".into(), node: NODE.into(), ..PodSpec::default() });

    let before = (h.gke.requests().len(), h.compute.requests().len());
    let outcome =
        release(h.store.as_ref(), &h.executor, &id, "bob@example.com", Timestamp::now()).await.expect("release");
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    // Every change the release sent is one its dry run (`incident show`, the dry-run executor) shows.
    let incident = h.get(&id).await;
    let shown: Vec<_> = incident
        .steps
        .iter()
        .filter_map(|s| s.target.as_ref().map(|t| s.action.release_requests(t, &incident.id)))
        .flatten()
        .collect();
    let (kube, compute) = (h.gke.requests(), h.compute.requests());
    let sent = kube[before.0..].iter().map(Sent::from).chain(compute[before.1..].iter().map(Sent::from));
    assert_every_change_is_one_of(&shown.iter().collect::<Vec<_>>(), sent);
    let undone: Vec<&str> = outcome.undone.iter().map(|(_, a, _)| a.as_str()).collect();
    assert_eq!(
        undone,
        ["isolate_pod", "label_pod", "cordon_node", "quarantine_instance", "label_instance"],
        "last first"
    );

    let node = h.gke.node(NODE).expect("node");
    assert!(!node["spec"]["unschedulable"].as_bool().unwrap_or(false), "schedulable again");
    let annotations = node["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
    assert!(annotations.is_empty(), "riposte's annotations and the scale-down protection are gone: {annotations:?}");
    let labels = h.pod_labels(NS, POD);
    assert_eq!(labels, serde_json::json!({"app": "api"}), "only the pod's own label is left");
    assert!(h.gke.network_policy(NS, &isolation_policy_name(&id)).is_none());
    let vm = h.compute.instance(PROJECT, ZONE, NODE).expect("vm");
    assert!(!vm["tags"]["items"].as_array().into_iter().flatten().any(|t| t == "riposte-quarantine"));
    assert!(vm["labels"].get("riposte-incident").is_none());

    // Recorded, closed, and the approval withdrawn: the drain never runs.
    let incident = h.get(&id).await;
    assert!(incident.tally.resolved_at.is_some());
    assert!(
        matches!(status(&incident, "drain_node"), StepStatus::Skipped { reason } if reason.contains("released by bob@example.com"))
    );
    assert!(incident.steps.iter().filter(|s| s.action.reversal().is_some()).all(|s| s.released.is_some()));
    h.runner().run(&id).await.expect("run");
    assert!(h.gke.pod(NS, "web-1").is_some(), "no drain after release");
    // A second release has nothing left to do.
    let again = release(h.store.as_ref(), &h.executor, &id, "bob@example.com", Timestamp::now()).await.expect("again");
    assert!(again.undone.is_empty() && again.failed.is_empty(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_leaves_a_node_cordoned_and_protected_before_riposte_as_it_was_against_fake_gke() {
    let h = harness().await;
    h.gke.add_node(NodeSpec {
        name: "gke-prod-eu-default-pool-5c1d2e3f-cord".into(),
        provider_id: format!("gce://{PROJECT}/{ZONE}/gke-prod-eu-default-pool-5c1d2e3f-cord"),
        unschedulable: true,
        annotations: [(SCALE_DOWN_DISABLED.to_string(), "true".to_string())].into(),
        ..NodeSpec::default()
    });
    h.gke.add_pod(PodSpec {
        namespace: NS.into(),
        name: "web-9".into(),
        node: "gke-prod-eu-default-pool-5c1d2e3f-cord".into(),
        ..PodSpec::default()
    });
    let body = String::from_utf8(pod_only_alert()).expect("utf8").replace(POD, "web-9");
    let id = h.intake(&policy(&["cordon_node"], &[], false), body.as_bytes()).await;
    h.runner().run(&id).await.expect("run");
    let incident = h.get(&id).await;
    let said = report(&incident, "cordon_node");
    assert!(said.contains("already unschedulable") && said.contains("already protected from scale-down"), "{said}");
    release(h.store.as_ref(), &h.executor, &id, "bob", Timestamp::now()).await.expect("release");
    let node = h.gke.node("gke-prod-eu-default-pool-5c1d2e3f-cord").expect("node");
    assert_eq!(node["spec"]["unschedulable"], true, "someone else cordoned it; it stays cordoned");
    assert_eq!(
        node["metadata"]["annotations"],
        serde_json::json!({SCALE_DOWN_DISABLED: "true"}),
        "their protection stays"
    );
    assert!(h.gke.mutations().is_empty(), "{:?}", h.gke.mutations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_node_cordoned_before_riposte_only_the_protection_is_added_and_released_against_fake_gke() {
    let h = harness().await;
    let name = "gke-prod-eu-default-pool-5c1d2e3f-half";
    h.gke.add_node(NodeSpec {
        name: name.into(),
        provider_id: format!("gce://{PROJECT}/{ZONE}/{name}"),
        unschedulable: true,
        annotations: [("team".to_string(), "payments".to_string())].into(),
        ..NodeSpec::default()
    });
    h.gke.add_pod(PodSpec { namespace: NS.into(), name: "web-8".into(), node: name.into(), ..PodSpec::default() });
    let body = String::from_utf8(pod_only_alert()).expect("utf8").replace(POD, "web-8");
    let id = h.intake(&policy(&["cordon_node"], &[], false), body.as_bytes()).await;
    h.runner().run(&id).await.expect("run");
    let said = report(&h.get(&id).await, "cordon_node");
    assert!(said.starts_with(&format!("protected node {name} from cluster-autoscaler scale-down")), "{said}");
    let node = h.gke.node(name).expect("node");
    let annotations = &node["metadata"]["annotations"];
    assert_eq!((annotations[SCALE_DOWN_DISABLED].as_str(), annotations.get(CORDONED_BY)), (Some("true"), None));
    assert_eq!(annotations[PROTECTED_BY].as_str(), Some(incident_label(&id).as_str()));

    release(h.store.as_ref(), &h.executor, &id, "bob", Timestamp::now()).await.expect("release");
    let node = h.gke.node(name).expect("node");
    assert_eq!(node["spec"]["unschedulable"], true, "cordoned by someone else: stays cordoned");
    assert_eq!(node["metadata"]["annotations"], serde_json::json!({"team": "payments"}), "as it was before riposte");
}

/// The approve service may run an approved drain while the intake's automatic snapshot is still
/// running: an emptied node is what scale-down and auto-upgrade take, so the drain waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_drain_waits_until_the_snapshots_are_taken_against_fake_gke_and_fake_compute() {
    let h = harness().await;
    h.add_controlled_pod("web-1", ("ReplicaSet", "web-5f6d"));
    let id = h.intake(&policy(&["snapshot_disks", "cordon_node"], &["drain_node"], false), &pod_only_alert()).await;
    h.approve(&id).await;
    let approve_service = h.runner().with_scope(StepScope::Approved);
    assert_eq!(approve_service.run(&id).await.expect("run"), 0, "nothing before the snapshots");
    assert_eq!(status(&h.get(&id).await, "drain_node"), &StepStatus::Pending);
    assert!(h.gke.mutations().is_empty() && h.gke.pod(NS, "web-1").is_some(), "{:?}", h.gke.mutations());

    h.runner().with_scope(StepScope::Automatic).run(&id).await.expect("automatic steps");
    assert_eq!(status(&h.get(&id).await, "snapshot_disks"), &StepStatus::Done);
    assert_eq!(approve_service.run(&id).await.expect("run"), 1);
    assert_eq!(status(&h.get(&id).await, "drain_node"), &StepStatus::Done);
    assert!(h.gke.pod(NS, "web-1").is_none(), "evicted once the disks were snapshotted");
    assert_eq!(h.compute.snapshots().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_policy_asks_the_api_server_for_dry_runs_and_changes_nothing_against_fake_gke() {
    let h = harness().await;
    let yaml = policy(&["snapshot_disks", "cordon_node", "label_pod", "isolate_pod"], &["delete_pod"], true);
    let id = h.intake(&yaml, &pod_only_alert()).await;
    h.runner().run(&id).await.expect("run");
    let incident = h.approve_and_run(&id).await;
    for s in &incident.steps {
        assert_eq!(s.status, StepStatus::Done, "{}: {:?}", s.action.name(), s.report);
        assert!(s.report.as_ref().is_some_and(|r| r.dry_run));
    }
    assert!(report(&incident, "cordon_node").starts_with("server dry run (dryRun=All)"));
    let writes: Vec<_> = h.gke.requests().into_iter().filter(|r| r.method != "GET").collect();
    assert_eq!(writes.len(), 5, "cordon, policy, label, isolation label, delete: {writes:#?}");
    assert!(writes.iter().all(|r| r.dry_run && (200..300).contains(&r.status)), "{writes:#?}");
    assert!(h.gke.mutations().is_empty());
    assert!(!h.gke.node(NODE).expect("node")["spec"]["unschedulable"].as_bool().unwrap_or(false));
    assert!(h.gke.pod(NS, POD).is_some());
    assert!(h.compute.snapshots().is_empty(), "Compute has no dry run: nothing is sent there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_recorded_uid_a_destructive_step_refuses_against_fake_gke() {
    let h = harness().await;
    // The alert names a pod the cluster does not have (yet): nothing can be recorded.
    let body = String::from_utf8(pod_only_alert()).expect("utf8").replace(POD, "api-7d9f8b6c5-later");
    let id = h.intake(&policy(&[], &["delete_pod"], false), body.as_bytes()).await;
    let planned = h.get(&id).await;
    assert!(planned.journal.iter().any(|j| j.message.contains("does not exist")), "{:?}", planned.journal);
    h.gke.add_pod(PodSpec {
        namespace: NS.into(),
        name: "api-7d9f8b6c5-later".into(),
        node: NODE.into(),
        ..PodSpec::default()
    });
    let incident = h.approve_and_run(&id).await;
    let StepStatus::Failed { error } = status(&incident, "delete_pod") else {
        panic!("{:?}", status(&incident, "delete_pod"))
    };
    assert!(error.contains("UID was not recorded"), "{error}");
    assert!(h.gke.pod(NS, "api-7d9f8b6c5-later").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried_and_a_private_only_cluster_is_reached_privately_against_fake_gke() {
    let h = harness().await;
    h.gke.set_private_only(true);
    h.gke.fail_next("PATCH", &format!("/api/v1/namespaces/{NS}/pods/{POD}"), 429, 2);
    h.gke.fail_next("PATCH", &format!("/api/v1/nodes/{NODE}"), 503, 1);
    h.gke.fail_next("GET", "/v1/projects", 503, 1);
    let id = h.intake(&policy(&["cordon_node", "label_pod"], &[], false), &pod_only_alert()).await;
    h.runner().run(&id).await.expect("run");
    let incident = h.get(&id).await;
    assert_eq!(*status(&incident, "cordon_node"), StepStatus::Done, "{}", report(&incident, "cordon_node"));
    assert_eq!(*status(&incident, "label_pod"), StepStatus::Done, "{}", report(&incident, "label_pod"));
    assert_eq!(h.pod_labels(NS, POD)["quarantine"], "true");
    assert!(report(&incident, "label_pod").contains("labelled"));
    let base = format!("https://{}", h.gke.apiserver_endpoint());
    let step = incident.steps.iter().find(|s| s.action.name() == "label_pod").expect("step");
    assert!(step.report.as_ref().expect("report").requests[0].url.starts_with(&base), "the private endpoint");
}

/// The IAM permission GKE checks for a Kubernetes (or Container API) request.
fn permission_for(method: &str, path: &str) -> String {
    if path.starts_with("/v1/projects/") {
        return "container.clusters.get".into();
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/v1/… or /apis/group/version/…, then [namespaces/ns/]resource[/name[/subresource]].
    let rest = if parts[0] == "api" { &parts[2..] } else { &parts[3..] };
    let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 { &rest[2..] } else { rest };
    let resource = match rest[0] {
        "networkpolicies" => "networkPolicies",
        "replicasets" => "replicaSets",
        "statefulsets" => "statefulSets",
        "daemonsets" => "daemonSets",
        "cronjobs" => "cronJobs",
        other => other,
    };
    let verb = match (method, rest.len(), rest.get(2)) {
        ("POST", 3, Some(&"eviction")) => "evict",
        ("GET", 3, Some(&"log")) => "getLogs",
        ("GET", 1, _) => "list",
        ("GET", _, _) => "get",
        ("POST", _, _) => "create",
        ("PATCH" | "PUT", _, _) => "update",
        ("DELETE", _, _) => "delete",
        _ => "unknown",
    };
    format!("container.{resource}.{verb}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kubernetes_call_is_covered_by_the_declared_permissions_against_fake_gke() {
    use riposte_core::locate::LOCATE_PERMISSIONS;
    // Every node and pod action of the catalogue, so a new one is checked without being listed here.
    let actions: Vec<Action> = riposte_core::action::ACTION_NAMES
        .iter()
        .map(|name| serde_json::from_value::<Action>(serde_json::json!({ *name: {} })).expect("action"))
        .filter(|a| a.target_kind() != TargetKind::Instance)
        .collect();
    assert_eq!(actions.len(), 7);
    for action in actions.iter().map(|a| (a.name(), a.class() == ActionClass::Destructive)) {
        let (action, destructive) = action;
        let evidence = action == "collect_evidence";
        let h = if evidence { harness_with_evidence().await } else { harness().await };
        let with_bucket = format!("{{collect_evidence: {{bucket: {BUCKET}}}}}");
        let written = if evidence { with_bucket.as_str() } else { action };
        let yaml = if destructive { policy(&[], &[written], false) } else { policy(&[written], &[], false) };
        let id = h.intake(&yaml, &pod_only_alert()).await;
        let located: Vec<String> = h
            .gke
            .requests()
            .iter()
            .chain(&h.gke.container_requests())
            .map(|r| permission_for(&r.method, &r.path))
            .collect();
        for p in &located {
            assert!(LOCATE_PERMISSIONS.contains(&p.as_str()), "locating needs {p}, not declared");
        }
        let before = (h.gke.requests().len(), h.gke.container_requests().len());
        if destructive {
            h.approve(&id).await;
        }
        h.runner().run(&id).await.expect("run");
        let incident = h.get(&id).await;
        let step = incident.steps.iter().find(|s| s.action.name() == action).expect("step");
        assert_eq!(step.status, StepStatus::Done, "{action}: {:?}", step.report);
        let declared = step.action.permissions();
        let used: Vec<String> = h.gke.requests()[before.0..]
            .iter()
            .chain(&h.gke.container_requests()[before.1..])
            .map(|r| permission_for(&r.method, &r.path))
            .collect();
        assert!(!used.is_empty(), "{action} made no call");
        for p in &used {
            assert!(declared.contains(&p.as_str()), "{action} uses {p}, which it does not declare ({declared:?})");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_with_the_dry_run_executor_undoes_nothing_and_records_nothing_against_fake_gke() {
    let h = harness().await;
    let id = h.intake(&policy(&["cordon_node", "label_pod"], &[], false), &pod_only_alert()).await;
    h.runner().run(&id).await.expect("run");
    let dry: Arc<dyn Executor> = Arc::new(riposte_core::executor::DryRunExecutor);
    let outcome = release(h.store.as_ref(), &dry, &id, "bob", Timestamp::now()).await.expect("release");
    assert!(outcome.undone.is_empty(), "{outcome:?}");
    assert_eq!(outcome.failed.len(), 2);
    assert!(outcome.failed[0].2.contains("RIPOSTE_EXECUTOR=google-cloud"), "{outcome:?}");
    assert!(h.get(&id).await.steps.iter().all(|s| s.released.is_none()));
    // The real executor then finds both steps still to undo.
    let real = release(h.store.as_ref(), &h.executor, &id, "bob", Timestamp::now()).await.expect("release");
    assert_eq!(real.undone.len(), 2, "{real:?}");
    assert_ne!(h.gke.node(NODE).expect("node")["spec"]["unschedulable"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_an_older_incident_keeps_the_quarantine_a_newer_one_set_against_fake_gke_and_fake_compute() {
    let h = harness().await;
    let yaml = policy(&["label_pod", "label_instance: {labels: {riposte-state: quarantined}}"], &[], false);
    let first = h.intake(&yaml, &pod_only_alert()).await;
    h.runner().run(&first).await.expect("run");
    // The first incident is closed; the same pod alerts again and a second incident labels it.
    release(h.store.as_ref(), &h.executor, &first, "bob", Timestamp::now()).await.expect("release");
    let second = h.intake(&yaml, &pod_only_alert()).await;
    assert_ne!(first, second);
    h.runner().run(&second).await.expect("run");
    let vm_labels = h.compute.instance(PROJECT, ZONE, NODE).expect("vm")["labels"].clone();
    assert!(
        vm_labels.as_object().is_some_and(|l| l.len() >= 2),
        "the policy's labels and riposte-incident: {vm_labels}"
    );
    // Releasing the first again (or late) must not strip the second's quarantine.
    let store = h.store.clone();
    store
        .update(&first, Box::new(|i| i.steps.iter_mut().map(|s| s.released.take()).count() > 0))
        .await
        .expect("forget the first release");
    release(h.store.as_ref(), &h.executor, &first, "bob", Timestamp::now()).await.expect("release");
    let labels = h.pod_labels(NS, POD);
    assert_eq!(labels["quarantine"], "true", "{labels}");
    assert_eq!(labels[INCIDENT_LABEL].as_str(), Some(incident_label(&second).as_str()));
    // The same for the VM's labels: all of the second incident's are left.
    let vm = h.compute.instance(PROJECT, ZONE, NODE).expect("vm");
    assert_eq!(vm["labels"], vm_labels);
    assert_eq!(vm["labels"]["riposte-incident"].as_str(), Some(incident_label(&second).as_str()));
    let first = h.get(&first).await;
    let step = first.steps.iter().find(|s| s.action.name() == "label_instance").expect("label_instance");
    let report = &step.released.as_ref().expect("released").report.message;
    assert!(report.contains("labelled by incident"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_every_kubernetes_request_the_executor_sends_against_fake_gke() {
    // Every Kubernetes action, on a node with a second pod for the drain to evict: each change
    // the fake API server received is one the incident's dry run showed, body included.
    for on_approval in [["drain_node", "delete_pod"], ["drain_node", "delete_workload"]] {
        let h = harness().await;
        h.add_controlled_pod("web-1", ("ReplicaSet", "web-5f6d"));
        let id = h
            .intake(&policy(&["label_pod", "isolate_pod", "cordon_node"], &on_approval, false), &pod_only_alert())
            .await;
        h.runner().run(&id).await.expect("run");
        let incident = h.approve_and_run(&id).await;
        for s in &incident.steps {
            assert_eq!(s.status, StepStatus::Done, "{}: {:?}", s.action.name(), s.report);
        }
        let received = h.gke.requests();
        assert!(
            received.iter().any(|r| r.path.ends_with("/pods/web-1/eviction") && r.status == 201),
            "{on_approval:?}"
        );
        crate::planned::assert_every_change_sent_was_shown(&incident, received.iter().map(Sent::from));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_a_share_of_a_node_pool_is_cordoned_automatically_against_fake_gke() {
    use riposte_core::locate::NODE_POOL_LABEL;
    let h = harness().await;
    // A spot pool of ten nodes, an alerting pod on five of them.
    let spot = |n: usize| format!("gke-prod-eu-spot-pool-0a1b2c3d-s{n:02}");
    for n in 0..10 {
        h.gke.add_node(NodeSpec {
            name: spot(n),
            provider_id: format!("gce://{PROJECT}/{ZONE}/{}", spot(n)),
            labels: labels(&[(NODE_POOL_LABEL, "spot-pool")]),
            ..NodeSpec::default()
        });
    }
    let yaml = policy(&["cordon_node"], &[], false) + "    limits: {node_pool: {percent: 20, per: 1h}}\n";
    let mut incidents = Vec::new();
    for n in 0..5 {
        let pod = format!("worker-s{n:02}");
        h.gke.add_pod(PodSpec { namespace: NS.into(), name: pod.clone(), node: spot(n), ..PodSpec::default() });
        let mut alert: Value = serde_json::from_slice(&pod_only_alert()).expect("json");
        alert["output_fields"]["k8s.pod.name"] = Value::String(pod);
        let id = h.intake(&yaml, &serde_json::to_vec(&alert).expect("json")).await;
        h.runner().run(&id).await.expect("run");
        incidents.push(h.get(&id).await);
    }
    let cordoned: Vec<String> =
        (0..10).map(spot).filter(|n| h.gke.node(n).expect("node")["spec"]["unschedulable"] == true).collect();
    assert_eq!(cordoned, [spot(0), spot(1)], "20% of a 10-node pool: two nodes, the first two alerts'");
    for i in &incidents[2..] {
        assert_eq!(
            i.limit_reached.as_deref(),
            Some(
                "limit reached: 2 nodes in 1h (20% of a node pool in 1h: pool spot-pool has 10 nodes; policy \"pod-containment\")"
            )
        );
        assert_eq!(status(i, "cordon_node"), &StepStatus::AwaitingApproval);
    }
    assert!(incidents[0].journal.iter().any(|j| j.message.contains("node pool spot-pool of 10 nodes")));

    // The fixture's node carries no pool label: its share cannot be checked, so a human decides.
    let id = h.intake(&yaml, &pod_only_alert()).await;
    let held = h.get(&id).await;
    assert!(
        held.limit_reached.as_deref().is_some_and(|r| r.starts_with("limit not checked: the node's pool is unknown"))
    );
    h.runner().run(&id).await.expect("run");
    assert_ne!(h.gke.node(NODE).expect("node")["spec"]["unschedulable"], true);
}

/// The policy of the evidence tests: collect the pod's evidence (logs cut at 2 KiB); delete the
/// pod after approval.
fn evidence_policy(dry_run: bool) -> String {
    policy(&[&format!("{{collect_evidence: {{bucket: {BUCKET}, max_log_bytes: 2048}}}}")], &["delete_pod"], dry_run)
}

/// The pod as an incident finds it: a long-winded app, a crash-looping miner with its previous
/// instance's log, events about it, its node and a neighbour.
fn stage_evidence(h: &Harness) {
    let chatty: String = (0..200).map(|i| format!("GET /api/orders/{i} 200\n")).collect();
    assert!(chatty.len() > 2048);
    h.gke.set_container_logs(
        NS,
        POD,
        ContainerLogs { container: "app".into(), current: chatty, ..ContainerLogs::default() },
    );
    // A sidecar whose image does not pull: no log, and no reason to lose the rest.
    h.gke.set_container_logs(
        NS,
        POD,
        ContainerLogs {
            container: "proxy".into(),
            waiting: Some("ImagePullBackOff".into()),
            ..ContainerLogs::default()
        },
    );
    h.gke.set_container_logs(
        NS,
        POD,
        ContainerLogs {
            container: "miner".into(),
            current: "restarted\n".into(),
            previous: Some("connecting to stratum+tcp://pool.evil:3333 <script>alert(1)</script>\n".into()),
            waiting: None,
        },
    );
    let event = |namespace: &str, kind: &str, name: &str, reason: &str| EventSpec {
        namespace: namespace.into(),
        object_kind: kind.into(),
        object_name: name.into(),
        reason: reason.into(),
        message: format!("{reason} of {name}"),
        event_type: "Warning".into(),
    };
    h.gke.add_event(event(NS, "Pod", POD, "BackOff"));
    h.gke.add_event(event(NS, "Pod", "web-1", "Unrelated"));
    h.gke.add_event(event("default", "Node", NODE, "NodeNotReady"));
}

/// `collect_evidence` end to end: every object the issue lists is in the bucket under the
/// incident's prefix, each hash in the journal and the report is the hash of what is stored, the
/// crash-looping container's previous log is kept, the oversized log is cut with a note, the
/// uploads are the ones the dry run showed, and an approved deletion waits until the evidence is
/// kept (and then deletes a pod whose evidence outlives it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_evidence_is_kept_hashed_and_before_its_deletion_against_fake_gke_and_fake_gcs() {
    use riposte_core::action::{CollectEvidence, EvidenceItem};
    let h = harness_with_evidence().await;
    let gcs = h.gcs.as_ref().expect("gcs");
    stage_evidence(&h);
    let pod_uid = h.gke.pod(NS, POD).expect("pod")["metadata"]["uid"].as_str().expect("uid").to_string();
    let id = h.intake(&evidence_policy(false), &pod_only_alert()).await;

    // Approved first: the deletion may not run while the evidence is still to be taken.
    h.approve(&id).await;
    let approved_only = h.runner().with_scope(StepScope::Approved);
    approved_only.run(&id).await.expect("run");
    assert!(h.gke.pod(NS, POD).is_some(), "the pod was not deleted before its evidence was kept");
    assert!(gcs.objects(BUCKET).await.is_empty());

    h.runner().run(&id).await.expect("run");
    let incident = h.get(&id).await;
    for s in &incident.steps {
        assert_eq!(s.status, StepStatus::Done, "{}: {:?}", s.action.name(), s.report);
    }
    assert!(h.gke.pod(NS, POD).is_none(), "deleted once the evidence was kept");

    let stored = gcs.objects(BUCKET).await;
    let name = |item| CollectEvidence::object_name(&id, NS, POD, item);
    let log = |container, previous| name(EvidenceItem::Log { container, previous });
    let expected: std::collections::BTreeSet<String> = [
        name(EvidenceItem::Pod),
        name(EvidenceItem::Node),
        name(EvidenceItem::PodEvents),
        name(EvidenceItem::NodeEvents),
        log("app", false),
        log("miner", false),
        log("miner", true),
        log("proxy", false),
        name(EvidenceItem::Alert),
        name(EvidenceItem::Incident),
    ]
    .into();
    assert_eq!(stored.keys().cloned().collect::<std::collections::BTreeSet<_>>(), expected);
    assert!(expected.iter().all(|n| n.starts_with(&format!("riposte/{}/{NS}/{POD}/", incident_label(&id)))));

    // The hashes the incident keeps are the hashes of what is stored.
    let step = incident.steps.iter().find(|s| s.action.name() == "collect_evidence").expect("step");
    let records = &step.report.as_ref().expect("report").evidence;
    assert_eq!(records.len(), stored.len());
    let console =
        riposte_core::notify::render_text(riposte_core::notify::Event::StepsFinished, &incident, &Default::default());
    for record in records {
        let object = record.object.strip_prefix(&format!("gs://{BUCKET}/")).expect("in the bucket");
        let content = &stored[object].content;
        assert_eq!(record.sha256, riposte_core::digest::sha256(content), "{object}");
        assert_eq!(record.bytes, content.len() as u64);
        assert_eq!(stored[object].resource["metadata"]["sha256"], record.sha256.as_str(), "kept with {object}");
        let line = record.journal_line();
        assert!(incident.journal.iter().any(|j| j.message == line), "journal lacks {line}");
        assert!(console.contains(&line), "the console's progress message lacks {line}");
    }
    let record = |object: &str| records.iter().find(|r| r.object.ends_with(object)).expect("record");
    let app = &stored[&log("app", false)].content;
    assert_eq!(app.len(), 2048, "cut at max_log_bytes");
    assert!(record(&log("app", false)).note.as_deref().is_some_and(|n| n.contains("cut at 2048 bytes")));
    assert!(record(&log("miner", false)).note.is_none());
    assert!(stored[&log("proxy", false)].content.is_empty());
    let waiting = record(&log("proxy", false)).note.clone().unwrap_or_default();
    assert!(waiting.starts_with("no log: ") && waiting.contains("waiting to start: ImagePullBackOff"), "{waiting}");
    assert_eq!(
        String::from_utf8_lossy(&stored[&log("miner", true)].content),
        "connecting to stratum+tcp://pool.evil:3333 <script>alert(1)</script>\n",
        "the crash-looping container's previous log"
    );
    let pod: Value = serde_json::from_slice(&stored[&name(EvidenceItem::Pod)].content).expect("pod json");
    assert_eq!(pod["metadata"]["uid"], pod_uid.as_str());
    let miner = pod["status"]["containerStatuses"].as_array().expect("statuses").iter().find(|s| s["name"] == "miner");
    assert_eq!(miner.expect("miner")["restartCount"], 1);
    let events = String::from_utf8_lossy(&stored[&name(EvidenceItem::PodEvents)].content).into_owned();
    assert!(events.contains("BackOff") && !events.contains("Unrelated"), "{events}");
    let node_events = String::from_utf8_lossy(&stored[&name(EvidenceItem::NodeEvents)].content).into_owned();
    assert!(node_events.contains("NodeNotReady"), "{node_events}");
    let node: Value = serde_json::from_slice(&stored[&name(EvidenceItem::Node)].content).expect("node json");
    assert_eq!(node["metadata"]["name"], NODE);
    let kept_incident: Value = serde_json::from_slice(&stored[&name(EvidenceItem::Incident)].content).expect("json");
    assert_eq!(kept_incident["id"], id.as_str());

    // Every upload the step sent is one the dry run showed (object names included).
    let uploads: Vec<(String, String)> = step
        .report
        .as_ref()
        .expect("report")
        .requests
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            let url = r.url.strip_prefix("https://storage.googleapis.com").expect("storage url");
            let (path, query) = url.split_once('?').expect("query");
            (path.to_string(), query.to_string())
        })
        .collect();
    assert_eq!(uploads.len(), stored.len());
    let bodies: Vec<Value> =
        step.report.as_ref().expect("report").requests.iter().filter_map(|r| r.body.clone()).collect();
    let planned: Vec<&riposte_core::requests::PlannedRequest> = step.requests.iter().collect();
    crate::planned::assert_every_change_is_one_of(
        &planned,
        uploads.iter().zip(&bodies).map(|((path, query), body)| Sent {
            method: "POST",
            path,
            query,
            content_type: None,
            body: Some(body),
        }),
    );
}

/// A retried `collect_evidence` never overwrites what an earlier attempt wrote: the object stays
/// as it was, and the hash the incident keeps is the stored object's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_an_earlier_attempt_wrote_is_kept_and_hashed_as_stored_against_fake_gke_and_fake_gcs() {
    use riposte_core::action::{CollectEvidence, EvidenceItem};
    let h = harness_with_evidence().await;
    let gcs = h.gcs.as_ref().expect("gcs");
    let id = h.intake(&evidence_policy(false), &pod_only_alert()).await;
    let pod_object = CollectEvidence::object_name(&id, NS, POD, EvidenceItem::Pod);
    let earlier = br#"{"metadata":{"name":"as the first attempt read it"}}"#;
    gcs.put(BUCKET, &pod_object, earlier).await;
    h.runner().run(&id).await.expect("run");
    let incident = h.get(&id).await;
    assert_eq!(*status(&incident, "collect_evidence"), StepStatus::Done, "{}", report(&incident, "collect_evidence"));
    let stored = gcs.objects(BUCKET).await;
    assert_eq!(stored[&pod_object].content, earlier, "not overwritten");
    let step = incident.steps.iter().find(|s| s.action.name() == "collect_evidence").expect("step");
    let record = step.report.as_ref().expect("report").evidence.iter().find(|r| r.object.ends_with("/pod.json"));
    let record = record.expect("pod record");
    assert_eq!(record.sha256, riposte_core::digest::sha256(earlier));
    assert!(record.note.as_deref().is_some_and(|n| n.contains("earlier attempt")), "{record:?}");
}

/// In a dry-run incident the evidence is read and hashed, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reads_the_evidence_and_writes_nothing_against_fake_gke_and_fake_gcs() {
    let h = harness_with_evidence().await;
    stage_evidence(&h);
    let id = h.intake(&evidence_policy(true), &pod_only_alert()).await;
    h.runner().run(&id).await.expect("run");
    let incident = h.get(&id).await;
    assert_eq!(*status(&incident, "collect_evidence"), StepStatus::Done, "{}", report(&incident, "collect_evidence"));
    assert!(h.gcs.as_ref().expect("gcs").objects(BUCKET).await.is_empty(), "a dry run writes nothing");
    let step = incident.steps.iter().find(|s| s.action.name() == "collect_evidence").expect("step");
    let records = &step.report.as_ref().expect("report").evidence;
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r.note.as_deref().is_some_and(|n| n.ends_with("dry run: not written"))));
}
