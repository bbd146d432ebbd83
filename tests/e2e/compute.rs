//! The Compute Engine executor end to end through the runner, against the stateful FAKE Compute
//! Engine in `riposte_e2e::fake_compute` (no Compute emulator exists). Every test name says so.
//!
//! The alert is the real Falcosidekick fixture: it names the node (= the VM) and the region, not
//! the zone, so every test also exercises the aggregated-list lookup of the VM.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use riposte_cloud::backoff::Backoff;
use riposte_cloud::compute::{ComputeExecutor, ComputeSettings, RetryBudget};
use riposte_core::action::{Action, ActionClass, TargetKind};
use riposte_core::incident::{Decision, Incident, StepStatus};
use riposte_core::metrics::Metrics;
use riposte_core::notify::Notifiers;
use riposte_core::policy::PolicySet;
use riposte_core::runner::Runner;
use riposte_core::sources::SourceKind;
use riposte_core::store::{EmbeddedStore, Store};
use riposte_e2e::fake_compute::{FakeCompute, Faults, InstanceSpec};
use riposte_e2e::intake::record_incident;
use riposte_e2e::scenario::{NODE, PROJECT, ZONE, containment_policy, three_disk_vm};
use serde_json::{Value, json};

use crate::helpers::{approve_as_alice, eventually, fixture};
use crate::metrics::Scrape;
use crate::planned::{Sent, assert_every_change_sent_was_shown};

/// Another node's VM, outside any managed instance group.
const SPARE: &str = "gke-prod-eu-spare-pool-0a1b2c3d-ab12";
const MIG: &str = "gke-prod-eu-default-pool-5c1d2e3f-grp";

/// The runbook's Compute steps: four automatic, two after approval.
fn containment() -> String {
    containment_policy(&["remove_external_ip", "abandon_instance"])
}

/// Deletion after approval.
const DELETION: &str = r#"
version: 1
notifiers: {console: {type: console}}
policies:
  - name: vm-deletion
    match: {sources: [falco], severity: ">= critical"}
    on_approval: [delete_instance]
    approval: {expires_in: 30m, required: 1}
"#;

/// A GKE node as Compute shows it: three disks, an external IP, in the node pool's group, with
/// labels and tags of its own that riposte must keep.
fn node_vm() -> InstanceSpec {
    node_vm_named(NODE, 7052018843299811234)
}

fn node_vm_named(name: &str, id: u64) -> InstanceSpec {
    let mut spec = three_disk_vm(name, id);
    spec.labels = BTreeMap::from([("goog-gke-node".to_string(), String::new()), ("env".to_string(), "prod".into())]);
    spec.tags = vec!["gke-prod-eu-5c1d2e3f-node".into()];
    spec.external_ips = vec!["34.76.10.20".into()];
    spec.mig = Some(MIG.into());
    spec
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    fake: FakeCompute,
    executor: Arc<ComputeExecutor>,
}

/// A retry budget small enough for tests, large enough for 30 % injected failures.
fn test_settings(fake: &FakeCompute) -> ComputeSettings {
    ComputeSettings {
        endpoint: fake.url(),
        retry: RetryBudget {
            backoff: Backoff { initial: Duration::from_millis(5), max: Duration::from_millis(40) },
            total: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(10),
        },
        operation_deadline: Duration::from_secs(20),
    }
}

async fn executor_for(fake: &FakeCompute) -> Arc<ComputeExecutor> {
    let anonymous = google_cloud_auth::credentials::anonymous::Builder::new().build();
    Arc::new(ComputeExecutor::new(test_settings(fake), Some(anonymous)).await.expect("executor"))
}

async fn harness(vms: Vec<InstanceSpec>) -> Harness {
    let fake = FakeCompute::start().await;
    for vm in vms {
        fake.add_instance(vm);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let executor = executor_for(&fake).await;
    Harness { _dir: dir, store, fake, executor }
}

impl Harness {
    fn runner(&self, owner: &str) -> Runner {
        Runner::new(self.store.clone(), self.executor.clone(), Notifiers::none(), owner.into())
    }

    /// Records an incident for the Falco fixture under `policy_yaml`, as intake would.
    async fn incident(&self, policy_yaml: &str) -> String {
        self.incident_on(policy_yaml, NODE).await
    }

    /// The same, with the fixture's node replaced by `node`.
    async fn incident_on(&self, policy_yaml: &str, node: &str) -> String {
        let policies = PolicySet::from_yaml(policy_yaml).expect("policy");
        let body = String::from_utf8(fixture("falco/drop-exec-sidekick-customfields.json")).expect("utf8");
        record_incident(self.store.as_ref(), &policies, SourceKind::Falco, body.replace(NODE, node).as_bytes()).await.0
    }

    async fn get(&self, id: &str) -> Incident {
        self.store.get(id).await.expect("get").expect("incident")
    }

    async fn approve(&self, id: &str) {
        approve_as_alice(self.store.as_ref(), id).await;
    }

    fn vm(&self) -> Value {
        self.fake.instance(PROJECT, ZONE, NODE).expect("the VM exists")
    }

    /// No requestId took effect twice, and every effect carried one.
    fn assert_each_effect_once(&self) {
        let mut per_request: HashMap<String, usize> = HashMap::new();
        for effect in self.fake.effects() {
            let rid = effect
                .request_id
                .unwrap_or_else(|| panic!("{} {} sent without a requestId", effect.op_type, effect.target));
            *per_request.entry(rid).or_default() += 1;
        }
        let repeated: Vec<_> = per_request.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "effects repeated under one requestId: {repeated:?}");
    }
}

fn statuses(incident: &Incident) -> Vec<(&'static str, StepStatus)> {
    incident.steps.iter().map(|s| (s.action.name(), s.status.clone())).collect()
}

fn step<'a>(incident: &'a Incident, action: &str) -> &'a riposte_core::incident::Step {
    incident.steps.iter().find(|s| s.action.name() == action).expect("step")
}

fn disk_url(zone: &str, disk: &str) -> String {
    format!("https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{zone}/disks/{disk}")
}

fn tags(vm: &Value) -> Vec<String> {
    vm["tags"]["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_vm_containment_against_fake_compute_then_approved_ip_removal_and_abandon() {
    let h = harness(vec![node_vm()]).await;
    let id = h.incident(&containment()).await;
    let runner = h.runner("r1");
    assert_eq!(runner.run(&id).await.expect("run"), 4);
    let incident = h.get(&id).await;
    for (name, status) in statuses(&incident).into_iter().take(4) {
        assert_eq!(status, StepStatus::Done, "{name}: {:?}", step(&incident, name).report);
    }

    // Evidence: every disk snapshotted, named for the incident, labelled with it.
    let snapshots = h.fake.snapshots();
    assert_eq!(snapshots.len(), 3, "{snapshots:#?}");
    for s in &snapshots {
        let name = s["name"].as_str().expect("name");
        assert!(name.starts_with("riposte-") && name.len() <= 63, "{name}");
        assert_eq!(s["labels"]["riposte-incident"], json!(riposte_core::requests::incident_label(&id)));
    }
    let mut disks: Vec<&str> =
        snapshots.iter().filter_map(|s| s["sourceDisk"].as_str()).map(|d| d.rsplit('/').next().unwrap_or(d)).collect();
    disks.sort();
    assert_eq!(disks, [NODE.to_string(), format!("{NODE}-data"), format!("{NODE}-scratch")]);

    // Labels merged, none dropped; tag added to the existing ones.
    let vm = h.vm();
    assert_eq!(vm["labels"]["env"], "prod");
    assert_eq!(vm["labels"]["goog-gke-node"], "");
    assert_eq!(vm["labels"]["riposte-state"], "quarantined");
    assert_eq!(tags(&vm), ["gke-prod-eu-5c1d2e3f-node", "riposte-quarantine"]);

    // The quarantine rules, on the VM's network, exactly as the runbook says.
    let egress = h.fake.firewall(PROJECT, "riposte-quarantine-deny-egress-default").expect("egress rule");
    assert_eq!((egress["direction"].as_str(), egress["priority"].as_i64()), (Some("EGRESS"), Some(0)));
    assert_eq!(egress["destinationRanges"], json!(["0.0.0.0/0"]));
    assert_eq!(egress["denied"], json!([{"IPProtocol": "all"}]));
    assert_eq!(egress["targetTags"], json!(["riposte-quarantine"]));
    assert!(egress["network"].as_str().expect("network").ends_with("/global/networks/default"));
    let ingress = h.fake.firewall(PROJECT, "riposte-quarantine-deny-ingress-default").expect("ingress rule");
    assert_eq!((ingress["direction"].as_str(), ingress["priority"].as_i64()), (Some("INGRESS"), Some(1)));
    assert_eq!(ingress["sourceRanges"], json!(["0.0.0.0/0"]));
    let ssh = h.fake.firewall(PROJECT, "riposte-forensic-ssh-default").expect("ssh rule");
    assert_eq!(ssh["allowed"], json!([{"IPProtocol": "tcp", "ports": ["22"]}]));
    assert_eq!(
        (ssh["sourceTags"].clone(), ssh["targetTags"].clone()),
        (json!(["intermediate"]), json!(["riposte-quarantine"]))
    );

    // The report is a journal of what was sent, with requestIds.
    let report = step(&incident, "snapshot_disks").report.clone().expect("report");
    assert!(!report.dry_run);
    assert_eq!(report.requests.len(), 3);
    assert!(report.requests.iter().all(|r| r.url.contains("/createSnapshot?") && r.url.contains("requestId=")));

    // Nothing destructive yet.
    assert_eq!(h.vm()["networkInterfaces"][0]["accessConfigs"][0]["natIP"], "34.76.10.20");

    h.approve(&id).await;
    assert_eq!(runner.run(&id).await.expect("run"), 2);
    let incident = h.get(&id).await;
    assert_eq!(step(&incident, "remove_external_ip").status, StepStatus::Done);
    let removal = step(&incident, "remove_external_ip").report.clone().expect("report");
    assert!(removal.message.contains("34.76.10.20"), "the journal names the IP removed: {}", removal.message);
    assert!(h.vm()["networkInterfaces"][0]["accessConfigs"].as_array().is_none_or(|a| a.is_empty()));
    let abandon = step(&incident, "abandon_instance");
    assert_eq!(abandon.status, StepStatus::Done, "{:?}", abandon.report);
    let abandons: Vec<_> = h.fake.requests().into_iter().filter(|r| r.path.ends_with("/abandonInstances")).collect();
    assert_eq!(abandons.len(), 1);
    assert!(abandons[0].path.contains(&format!("/instanceGroupManagers/{MIG}/")));
    assert_eq!(abandons[0].body, Some(json!({"instances": [format!("zones/{ZONE}/instances/{NODE}")]})));
    assert!(h.fake.instance(PROJECT, ZONE, NODE).is_some(), "abandoned, not deleted");
    h.assert_each_effect_once();
}

/// Containment is measured once per incident, from the first alert to its last automatic step;
/// the approval wait from the opening to the decision; steps by action and outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containment_and_the_approval_wait_are_measured_against_fake_compute() {
    let h = harness(vec![node_vm()]).await;
    let id = h.incident(&containment()).await;
    let policy = h.get(&id).await.policy;
    let metrics = Metrics::new();
    let runner = h.runner("r1").with_metrics(metrics.clone());
    assert_eq!(runner.run(&id).await.expect("run"), 4);
    let scrape = Scrape::parse(&metrics.render());
    let contained = [("policy", policy.as_str()), ("outcome", "contained")];
    let (count, seconds) = scrape.histogram("riposte_containment_seconds", &contained).expect("containment observed");
    assert_eq!(count, 1);
    // From the alert's arrival to the journal's record of the last automatic step.
    let incident = h.get(&id).await;
    let last_done = incident.journal.iter().filter(|e| e.message.ends_with(" done")).map(|e| e.at).max().expect("done");
    let expected = last_done.duration_since(incident.created_at).as_secs_f64();
    assert!(expected > 0.0 && (seconds - expected).abs() < 1e-6, "{seconds} s measured, {expected} s in the journal");
    for action in ["snapshot_disks", "label_instance", "quarantine_instance", "allow_forensic_ssh"] {
        let done = [("action", action), ("outcome", "done"), ("error", "")];
        assert_eq!(scrape.counter("riposte_steps_total", &done), 1.0, "{action}");
    }

    let decision = Decision {
        by: "alice@example.com".into(),
        slot: String::new(),
        approve: true,
        at: incident.created_at + jiff::SignedDuration::from_secs(90),
    };
    let hash = incident.approval.expect("awaits approval").plan_hash;
    runner.decide(&id, &hash, decision).await.expect("decide");
    eventually(|| {
        let metrics = metrics.clone();
        async move {
            let scrape = Scrape::parse(&metrics.render());
            scrape.histogram("riposte_approval_wait_seconds", &[("outcome", "approved")]).filter(|(n, _)| *n == 1)
        }
    })
    .await;
    runner.settle(tokio::time::Instant::now() + Duration::from_secs(20)).await;
    let scrape = Scrape::parse(&metrics.render());
    let approved = [("policy", policy.as_str()), ("outcome", "approved")];
    assert_eq!(scrape.histogram("riposte_approval_wait_seconds", &approved), Some((1, 90.0)));
    for action in ["remove_external_ip", "abandon_instance"] {
        let done = [("action", action), ("outcome", "done"), ("error", "")];
        assert_eq!(scrape.counter("riposte_steps_total", &done), 1.0, "{action} ran after the approval");
    }
    // The approved steps are not containment: it was measured once.
    assert_eq!(scrape.histogram("riposte_containment_seconds", &contained).map(|(n, _)| n), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_label_writers_against_fake_compute_lose_no_label() {
    let h = harness(vec![node_vm()]).await;
    // Two incidents label the same VM at the same moment; the fake holds both writes until both
    // arrived, so one carries a stale fingerprint and gets 412.
    let a = h.incident(containment().replace("riposte-state: quarantined", "team-a: seen").as_str()).await;
    let other = containment()
        .replace("riposte-state: quarantined", "team-b: seen")
        .replace("vm-containment", "vm-containment-b");
    let b = h.incident(&other).await;
    assert_ne!(a, b);
    h.fake.gate("setLabels", 2);
    let (ra, rb) = (h.runner("ra"), h.runner("rb"));
    let (x, y) = tokio::join!(ra.run(&a), rb.run(&b));
    x.expect("run a");
    y.expect("run b");
    for id in [&a, &b] {
        assert_eq!(step(&h.get(id).await, "label_instance").status, StepStatus::Done);
    }
    assert!(h.fake.http_errors(412) >= 1, "the race must have happened");
    let labels = &h.vm()["labels"];
    assert_eq!((labels["team-a"].as_str(), labels["team-b"].as_str()), (Some("seen"), Some("seen")));
    assert_eq!(labels["env"], "prod", "the VM's own labels survive both writes");
    // Both incidents' ids cannot share the one riposte-incident key: the later write wins it.
    assert!(labels["riposte-incident"].is_string());
    h.assert_each_effect_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_firewall_rules_against_fake_compute_same_content_is_success_different_is_a_clear_error() {
    // The same content, as a previous incident left it: 409, compared, accepted.
    let h = harness(vec![node_vm()]).await;
    h.fake.add_firewall(
        PROJECT,
        json!({
            "name": "riposte-quarantine-deny-egress-default", "direction": "EGRESS", "priority": 0,
            "network": format!("https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/default"),
            "destinationRanges": ["0.0.0.0/0"], "denied": [{"IPProtocol": "all"}], "targetTags": ["riposte-quarantine"],
        }),
    );
    // Someone else's rule under the SSH rule's name, with another meaning.
    h.fake.add_firewall(
        PROJECT,
        json!({
            "name": "riposte-forensic-ssh-default", "direction": "INGRESS", "priority": 1000,
            "network": format!("https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/default"),
            "sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}], "targetTags": ["riposte-quarantine"],
        }),
    );
    let id = h.incident(&containment()).await;
    h.runner("r1").run(&id).await.expect("run");
    let incident = h.get(&id).await;
    let quarantine = step(&incident, "quarantine_instance");
    assert_eq!(quarantine.status, StepStatus::Done, "{:?}", quarantine.report);
    let message = &quarantine.report.as_ref().expect("report").message;
    assert!(message.contains("riposte-quarantine-deny-egress-default present"), "{message}");
    assert!(message.contains("riposte-quarantine-deny-ingress-default created"), "{message}");
    assert!(h.fake.http_errors(409) >= 2, "both rules answered 409 alreadyExists");
    let StepStatus::Failed { error } = &step(&incident, "allow_forensic_ssh").status else {
        panic!("a conflicting rule must fail the step: {:?}", step(&incident, "allow_forensic_ssh"));
    };
    assert!(error.contains("riposte-forensic-ssh-default already exists with different content"), "{error}");
    assert!(error.contains("priority is 1000, riposte needs 0"), "{error}");
    assert!(error.contains("sourceTags"), "{error}");
    // Nothing was overwritten.
    assert_eq!(h.fake.firewall(PROJECT, "riposte-forensic-ssh-default").expect("rule")["priority"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_inside_an_operation_against_fake_compute_fails_the_step_with_its_message() {
    let h = harness(vec![node_vm()]).await;
    h.fake.fail_next_operation("createSnapshot", "QUOTA_EXCEEDED", "Quota 'SNAPSHOTS' exceeded. Limit: 0.0 globally.");
    let id = h.incident(&containment()).await;
    h.runner("r1").run(&id).await.expect("run");
    let incident = h.get(&id).await;
    let StepStatus::Failed { error } = &step(&incident, "snapshot_disks").status else {
        panic!("{:?}", step(&incident, "snapshot_disks"));
    };
    assert!(error.contains("QUOTA_EXCEEDED") && error.contains("Quota 'SNAPSHOTS' exceeded"), "{error}");
    assert_eq!(h.fake.snapshots().len(), 2, "the other disks were snapshotted");
    // The other steps are independent and done.
    for name in ["label_instance", "quarantine_instance", "allow_forensic_ssh"] {
        assert_eq!(step(&incident, name).status, StepStatus::Done, "{name}");
    }
}

/// A failed step is counted with its error kind, and the containment as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_is_measured_with_its_error_kind_against_fake_compute() {
    let h = harness(vec![node_vm()]).await;
    h.fake.fail_next_operation("createSnapshot", "QUOTA_EXCEEDED", "Quota 'SNAPSHOTS' exceeded. Limit: 0.0 globally.");
    let id = h.incident(&containment()).await;
    let metrics = Metrics::new();
    h.runner("r1").with_metrics(metrics.clone()).run(&id).await.expect("run");
    let scrape = Scrape::parse(&metrics.render());
    let failed = scrape.counters("riposte_steps_total");
    let snapshot_failures: Vec<_> =
        failed.iter().filter(|(labels, _)| labels.contains(&("action".into(), "snapshot_disks".into()))).collect();
    assert_eq!(snapshot_failures.len(), 1, "{failed:?}");
    let (labels, n) = snapshot_failures[0];
    assert_eq!(*n, 1.0);
    assert!(labels.contains(&("outcome".into(), "failed".into())), "{labels:?}");
    assert!(labels.contains(&("error".into(), "operation_failed".into())), "{labels:?}");
    let policy = h.get(&id).await.policy;
    let outcome = [("policy", policy.as_str()), ("outcome", "failed")];
    assert_eq!(scrape.histogram("riposte_containment_seconds", &outcome).map(|(n, _)| n), Some(1));
    let contained = [("policy", policy.as_str()), ("outcome", "contained")];
    assert_eq!(scrape.histogram("riposte_containment_seconds", &contained), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_send_and_record_against_fake_compute_acts_once() {
    let h = harness(vec![node_vm()]).await;
    let id = h.incident(&containment()).await;
    // The first snapshot and the first firewall insert take effect, then the process "dies"
    // before it hears back: the task is aborted while the requests hang.
    h.fake.stall_after_effect("createSnapshot");
    h.fake.stall_after_effect("insert");
    let lease = Duration::from_millis(400);
    let crashed = h.runner("doomed").with_lease(lease, 5);
    let doomed_id = id.clone();
    let task = tokio::spawn(async move { crashed.run(&doomed_id).await });
    crate::helpers::eventually(|| async {
        let effects = h.fake.effects();
        (effects.iter().any(|e| e.op_type == "createSnapshot") && effects.iter().any(|e| e.op_type == "insert"))
            .then_some(())
    })
    .await;
    // Let the two steps that did not stall (labels, the other rule) record, then "crash".
    crate::helpers::eventually(|| async {
        let i = h.store.get(&id).await.ok()??;
        (i.steps.iter().filter(|s| s.status == StepStatus::Done).count() == 2).then_some(())
    })
    .await;
    task.abort();
    let before = h.get(&id).await;
    // The snapshot step and whichever firewall step sent the stalled insert were claimed, never recorded.
    let running: Vec<&str> =
        before.steps.iter().filter(|s| s.status == StepStatus::Running).map(|s| s.action.name()).collect();
    assert!(running.contains(&"snapshot_disks") && running.len() == 2, "{:?}", statuses(&before));

    // A new process resumes after the lease lapses, with the same idempotency keys.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let successor = h.runner("successor");
    // A renewal already in flight at the abort may push the lease once more: sweep until done.
    crate::helpers::eventually(|| async {
        successor.sweep().await.ok()?;
        let i = h.store.get(&id).await.ok()??;
        i.steps.iter().filter(|s| !s.gated).all(|s| s.status == StepStatus::Done).then_some(())
    })
    .await;
    let after = h.get(&id).await;
    for (name, status) in statuses(&after).into_iter().take(4) {
        assert_eq!(status, StepStatus::Done, "{name}");
    }
    assert_eq!(h.fake.snapshots().len(), 3, "one snapshot per disk, not four");
    let inserts = h.fake.effects().into_iter().filter(|e| e.op_type == "insert").count();
    assert_eq!(inserts, 3, "two quarantine rules and the SSH rule, each once");
    assert_eq!(tags(&h.vm()).iter().filter(|t| *t == "riposte-quarantine").count(), 1);
    h.assert_each_effect_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_429_and_503_against_fake_compute_every_action_completes_once() {
    // Four nodes contained and stripped of their IPs, a fifth VM deleted: about a hundred calls.
    let nodes: Vec<String> = (0..4).map(|i| format!("gke-prod-eu-default-pool-5c1d2e3f-n{i:03}")).collect();
    let mut vms: Vec<InstanceSpec> = nodes.iter().zip(1u64..).map(|(n, id)| node_vm_named(n, id)).collect();
    vms.push(InstanceSpec {
        external_ips: vec!["34.76.99.1".into()],
        ..InstanceSpec::new(PROJECT, "europe-west1-c", SPARE, 42)
    });
    let h = harness(vms).await;
    h.fake.set_faults(Faults { reject_rate: 0.3, lost_response_rate: 0.1, seed: 7 });
    h.fake.set_latency("createSnapshot", Duration::from_millis(50));

    let mut ids = Vec::new();
    for node in &nodes {
        ids.push(h.incident_on(&containment(), node).await);
    }
    ids.push(h.incident_on(DELETION, SPARE).await);
    for id in &ids {
        h.approve(id).await;
    }
    let runner = h.runner("r1").with_lease(Duration::from_secs(30), 10);
    let mut steps = Vec::new();
    for _ in 0..10 {
        runner.sweep().await.expect("sweep");
        steps.clear();
        for id in &ids {
            steps.extend(h.get(id).await.steps);
        }
        if steps.iter().all(|s| s.status == StepStatus::Done) {
            break;
        }
    }
    for s in &steps {
        assert_eq!(s.status, StepStatus::Done, "{}: {:?}", s.action.name(), s.report);
    }
    let (faults, total) = (h.fake.http_errors(429) + h.fake.http_errors(503), h.fake.requests().len());
    assert!(
        faults * 10 >= total && h.fake.http_errors(429) > 0 && h.fake.http_errors(503) > 0,
        "about 30 % of {total} requests were refused, not {faults}"
    );
    h.assert_each_effect_once();
    assert_eq!(h.fake.snapshots().len(), 12, "three disks on each of four nodes, once each");
    for node in &nodes {
        let vm = h.fake.instance(PROJECT, ZONE, node).expect("vm");
        assert_eq!(tags(&vm).iter().filter(|t| *t == "riposte-quarantine").count(), 1);
        assert!(vm["networkInterfaces"][0]["accessConfigs"].as_array().is_none_or(|a| a.is_empty()));
    }
    assert!(h.fake.instance(PROJECT, "europe-west1-c", SPARE).is_none(), "deleted");
    let deletes: Vec<_> = h.fake.effects().into_iter().filter(|e| e.op_type == "delete").collect();
    assert_eq!(deletes.len(), 1, "a VM outside any group is deleted directly, once: {deletes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_instance_against_fake_compute_goes_through_its_managed_group() {
    let h = harness(vec![node_vm()]).await;
    let id = h.incident(DELETION).await;
    h.approve(&id).await;
    h.runner("r1").run(&id).await.expect("run");
    let incident = h.get(&id).await;
    let delete = step(&incident, "delete_instance");
    assert_eq!(delete.status, StepStatus::Done, "{:?}", delete.report);
    assert!(delete.report.as_ref().expect("report").message.contains(MIG));
    let ops: Vec<String> = h.fake.effects().into_iter().map(|e| e.op_type).collect();
    assert_eq!(ops, ["deleteInstances"], "through the group, so it is not recreated");
    assert!(h.fake.instance(PROJECT, ZONE, NODE).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_that_no_longer_exists_against_fake_compute_skips_steps_with_the_reason() {
    let h = harness(Vec::new()).await;
    let id = h.incident(&containment()).await;
    h.runner("r1").run(&id).await.expect("run");
    let incident = h.get(&id).await;
    for s in incident.steps.iter().filter(|s| !s.gated) {
        let StepStatus::Skipped { reason } = &s.status else { panic!("{}: {:?}", s.action.name(), s.status) };
        assert!(reason.contains(NODE) && reason.contains("no such VM in any zone"), "{reason}");
    }
    assert!(h.fake.effects().is_empty());
}

/// The IAM permission a Compute REST call needs, by method and path.
fn permission_for(method: &str, path: &str) -> &'static str {
    let rest = path.trim_start_matches("/compute/v1/projects/");
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    match (method, segments.as_slice()) {
        ("GET", ["aggregated", "instances"]) => "compute.instances.list",
        ("GET", ["zones", _, "instances", _]) => "compute.instances.get",
        ("POST", ["zones", _, "instances", _, "setLabels"]) => "compute.instances.setLabels",
        ("POST", ["zones", _, "instances", _, "setTags"]) => "compute.instances.setTags",
        ("POST", ["zones", _, "instances", _, "deleteAccessConfig"]) => "compute.instances.deleteAccessConfig",
        ("DELETE", ["zones", _, "instances", _]) => "compute.instances.delete",
        ("POST", ["zones" | "regions", _, "disks", _, "createSnapshot"]) => "compute.disks.createSnapshot",
        ("GET", ["global", "snapshots", _]) => "compute.snapshots.get",
        ("POST", ["global", "snapshots"]) => "compute.snapshots.create",
        ("POST", ["zones", _, "instanceGroupManagers", _, "listManagedInstances"]) => {
            "compute.instanceGroupManagers.get"
        }
        ("POST", ["global", "firewalls"]) => "compute.firewalls.create",
        ("GET", ["global", "firewalls", _]) => "compute.firewalls.get",
        ("POST", ["zones", _, "instanceGroupManagers", _, "abandonInstances" | "deleteInstances"]) => {
            "compute.instanceGroupManagers.update"
        }
        ("GET" | "POST", ["zones", _, "operations", ..]) => "compute.zoneOperations.get",
        ("GET" | "POST", ["global", "operations", ..]) => "compute.globalOperations.get",
        ("GET" | "POST", ["regions", _, "operations", ..]) => "compute.regionOperations.get",
        _ => panic!("no permission mapped for {method} {path}: add it here and to the action's permissions()"),
    }
}

/// Permissions a call needs beyond its own, per Compute's IAM reference.
fn implied_by(permission: &str) -> &'static [&'static str] {
    match permission {
        // The snapshot is created, with labels, as a new resource.
        "compute.disks.createSnapshot" => &["compute.snapshots.create", "compute.snapshots.setLabels"],
        // In the forensics project; the source disk's compute.disks.createSnapshot is in its own.
        "compute.snapshots.create" => &["compute.snapshots.setLabels"],
        // A rule is part of its network's policy.
        "compute.firewalls.create" => &["compute.networks.updatePolicy"],
        _ => &[],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_permissions_are_exactly_what_the_calls_against_fake_compute_need() {
    use std::collections::BTreeSet;
    // Every VM action of the catalogue, so a new one is checked without being listed here.
    let actions: Vec<(&str, bool)> = riposte_core::action::ACTION_NAMES
        .iter()
        .map(|name| serde_json::from_value::<Action>(json!({ *name: {} })).expect("action"))
        .filter(|a| a.target_kind() == TargetKind::Instance)
        .map(|a| (a.name(), a.class() == ActionClass::Destructive))
        .collect();
    assert_eq!(actions.len(), 7);
    for (action, destructive) in actions {
        let mut used = BTreeSet::new();
        let mut declared = BTreeSet::new();
        // delete_instance takes one path for a VM in a managed group and another for one outside;
        // every action finds its VM by name across zones (Falco) or by id in its zone (Monitoring).
        // The node also has a regional disk (a GKE regional persistent volume), for the regional path.
        let with_regional = InstanceSpec { regional_disks: vec!["pv-regional-data".into()], ..node_vm() };
        let vms = if action == "delete_instance" {
            vec![with_regional, node_vm_named(SPARE, 9)]
        } else {
            vec![with_regional]
        };
        for vm in vms {
            let vm = InstanceSpec { mig: vm.mig.filter(|_| vm.name == NODE), ..vm };
            for (source, rel) in [
                ("falco", "falco/drop-exec-sidekick-customfields.json"),
                ("monitoring", "monitoring/incident-gce-cpu-open-critical.json"),
            ] {
                let h = harness(vec![vm.clone()]).await;
                for op in [
                    "createSnapshot",
                    "setLabels",
                    "setTags",
                    "insert",
                    "deleteAccessConfig",
                    "abandonInstances",
                    "deleteInstances",
                    "delete",
                ] {
                    h.fake.set_latency(op, Duration::from_millis(20)); // so operations are waited for
                }
                // Rules of the same content already there for one run (create answers 409, then get),
                // absent for the other (create, then the operation): every path is exercised.
                let existing = if source == "falco" { 2 } else { 1 };
                for rule in [
                    json!({"name": "riposte-quarantine-deny-egress-default", "direction": "EGRESS", "priority": 0,
                        "destinationRanges": ["0.0.0.0/0"], "denied": [{"IPProtocol": "all"}], "targetTags": ["riposte-quarantine"]}),
                    json!({"name": "riposte-forensic-ssh-default", "direction": "INGRESS", "priority": 0,
                        "sourceTags": ["intermediate"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}], "targetTags": ["riposte-quarantine"]}),
                ]
                .into_iter()
                .take(existing)
                {
                    let mut rule = rule;
                    rule["network"] = json!(format!("https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/default"));
                    h.fake.add_firewall(PROJECT, rule);
                }
                let list = if destructive { "on_approval" } else { "actions" };
                let policy = PolicySet::from_yaml(&format!(
                    "version: 1\nnotifiers: {{console: {{type: console}}}}\npolicies:\n  - name: only-{action}\n    match: {{sources: [{source}]}}\n    {list}: [{action}]\n"
                ))
                .expect("policy");
                let body = String::from_utf8(fixture(rel))
                    .expect("utf8")
                    .replace(NODE, &vm.name)
                    .replace("7052018843299811234", &vm.id.to_string());
                let kind: SourceKind = source.parse().expect("source");
                let (id, _) = record_incident(h.store.as_ref(), &policy, kind, body.as_bytes()).await;
                if action == "snapshot_disks" && source == "falco" {
                    // Left READY by an earlier attempt: createSnapshot answers 409, the snapshot is read.
                    let name = riposte_core::action::snapshot_name(&id, ZONE, &vm.name);
                    h.fake.add_snapshot(PROJECT, &name, &disk_url(ZONE, &vm.name), "READY");
                }
                if destructive {
                    h.approve(&id).await;
                }
                h.runner("r1").run(&id).await.expect("run");
                let incident = h.get(&id).await;
                let s = step(&incident, action);
                assert_eq!(s.status, StepStatus::Done, "{action} on {} from {source}: {:?}", vm.name, s.report);
                declared.extend(s.action.permissions().iter().copied());
                for r in h.fake.requests() {
                    let p = permission_for(&r.method, &r.path);
                    used.insert(p);
                    used.extend(implied_by(p).iter().copied());
                }
            }
        }
        assert_eq!(declared, used, "{action}: the permissions it declares (left) and the ones its calls need (right)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_exactly_the_requests_the_executor_sends_against_fake_compute() {
    // The runbook's steps; deletion through the VM's group; deletion of a VM in no group.
    let outside_group = InstanceSpec { mig: None, ..node_vm() };
    for (policy, vm) in
        [(containment(), node_vm()), (DELETION.to_string(), node_vm()), (DELETION.to_string(), outside_group)]
    {
        let h = harness(vec![vm]).await;
        let id = h.incident(&policy).await;
        h.runner("r1").run(&id).await.expect("run");
        h.approve(&id).await;
        h.runner("r1").run(&id).await.expect("run");
        let incident = h.get(&id).await;
        let received = h.fake.requests();
        for s in &incident.steps {
            assert_eq!(s.status, StepStatus::Done, "{}", s.action.name());
            assert!(!s.report.as_ref().expect("report").requests.is_empty(), "{}", s.action.name());
        }
        assert_every_change_sent_was_shown(&incident, received.iter().map(Sent::from));
        // The reads too: the dry run shows the aggregated lookup the executor does.
        let lookups = received.iter().filter(|r| r.path.ends_with("/aggregated/instances")).count();
        assert_eq!(lookups, incident.steps.len(), "one lookup per step, as planned");
        assert!(
            incident.steps.iter().all(|s| s.requests[0].url.contains("/aggregated/instances?filter=name%20%3D%20"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_the_ipv6_rules_and_regional_snapshots_sent_for_a_dual_stack_vm_against_fake_compute() {
    let vm = InstanceSpec {
        external_ipv6: Some("2600:1900:4000:1::".into()),
        regional_disks: vec!["pv-regional-data".into()],
        ..node_vm()
    };
    let h = harness(vec![vm]).await;
    let id = h.incident(&containment()).await;
    h.runner("r1").run(&id).await.expect("run");
    h.approve(&id).await;
    h.runner("r1").run(&id).await.expect("run");
    let incident = h.get(&id).await;
    let received = h.fake.requests();
    let inserted: Vec<&str> = received
        .iter()
        .filter(|r| r.path.ends_with("/global/firewalls"))
        .filter_map(|r| r.body.as_ref()?["name"].as_str())
        .collect();
    assert!(inserted.contains(&"riposte-quarantine-deny-egress-v6-default"), "{inserted:?}");
    assert!(received.iter().any(|r| r.path.contains("/regions/europe-west1/disks/pv-regional-data/createSnapshot")));
    assert_every_change_sent_was_shown(&incident, received.iter().map(Sent::from));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_vpc_quarantine_against_fake_compute_puts_rules_in_the_host_project_per_network() {
    // One VM on the host project's shared network, one on the service project's own network: the
    // rules of each live in the network's project, under names that cannot collide.
    let mut shared = node_vm();
    shared.network = "projects/net-host/global/networks/shared".into();
    let mut own = node_vm_named(SPARE, 9);
    own.mig = None;
    let h = harness(vec![shared, own]).await;
    for node in [NODE, SPARE] {
        let id = h.incident_on(&containment(), node).await;
        h.runner("r1").run(&id).await.expect("run");
        let incident = h.get(&id).await;
        for name in ["quarantine_instance", "allow_forensic_ssh"] {
            assert_eq!(
                step(&incident, name).status,
                StepStatus::Done,
                "{node} {name}: {:?}",
                step(&incident, name).report
            );
        }
    }
    let host = h.fake.firewall("net-host", "riposte-quarantine-deny-egress-shared").expect("rule in the host project");
    assert!(host["network"].as_str().expect("network").ends_with("projects/net-host/global/networks/shared"));
    assert!(h.fake.firewall("net-host", "riposte-forensic-ssh-shared").is_some());
    assert!(
        h.fake.firewall(PROJECT, "riposte-quarantine-deny-egress-shared").is_none(),
        "nothing in the service project for it"
    );
    assert!(h.fake.firewall(PROJECT, "riposte-quarantine-deny-ingress-default").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regional_disks_are_snapshotted_too_against_fake_compute() {
    let h = harness(vec![InstanceSpec { regional_disks: vec!["pv-regional-data".into()], ..node_vm() }]).await;
    let id = h.incident(&containment()).await;
    h.runner("r1").run(&id).await.expect("run");
    let snapshot = step(&h.get(&id).await, "snapshot_disks").clone();
    assert_eq!(snapshot.status, StepStatus::Done, "{:?}", snapshot.report);
    let sources: Vec<String> =
        h.fake.snapshots().iter().filter_map(|s| s["sourceDisk"].as_str().map(String::from)).collect();
    assert_eq!(sources.len(), 4, "{sources:?}");
    assert!(sources.iter().any(|s| s.ends_with("/regions/europe-west1/disks/pv-regional-data")), "{sources:?}");
    let regional = h.fake.requests().into_iter().filter(|r| r.path.contains("/regions/europe-west1/")).count();
    assert!(regional >= 1, "a regional createSnapshot (and its regional operation)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_snapshots_against_fake_compute_are_waited_for_when_creating_and_refused_when_of_another_disk() {
    let h = harness(vec![node_vm()]).await;
    let id = h.incident(&containment()).await;
    // An earlier attempt's snapshot of the boot disk is still being created; someone else's
    // snapshot of another disk took the data disk's name.
    let boot = riposte_core::action::snapshot_name(&id, ZONE, NODE);
    h.fake.add_snapshot(PROJECT, &boot, &disk_url(ZONE, NODE), "CREATING");
    let data = riposte_core::action::snapshot_name(&id, ZONE, &format!("{NODE}-data"));
    h.fake.add_snapshot(PROJECT, &data, &disk_url(ZONE, "some-other-disk"), "READY");
    let fake = h.fake.clone();
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fake.add_snapshot(PROJECT, &boot, &disk_url(ZONE, NODE), "READY");
    });
    h.runner("r1").run(&id).await.expect("run");
    finisher.await.expect("finisher");
    let snapshot = step(&h.get(&id).await, "snapshot_disks").clone();
    let StepStatus::Failed { error } = &snapshot.status else { panic!("{snapshot:?}") };
    assert!(error.contains(&format!("{data} is of disk")) && error.contains("some-other-disk"), "{error}");
    // The boot disk's snapshot was waited for until READY, not taken twice, and the scratch disk's made.
    let requests = h.fake.requests();
    let reads = requests
        .iter()
        .filter(|r| {
            r.path.ends_with(&format!("/global/snapshots/{}", riposte_core::action::snapshot_name(&id, ZONE, NODE)))
        })
        .count();
    assert!(reads >= 2, "polled while CREATING: {reads} read(s)");
    assert_eq!(
        h.fake.effects().iter().filter(|e| e.op_type == "createSnapshot").count(),
        1,
        "only the scratch disk's snapshot is new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deletion_against_fake_compute_is_done_only_when_the_vm_is_gone() {
    let h = harness(vec![node_vm()]).await;
    h.fake.set_mig_delete_delay(Duration::from_millis(400));
    let id = h.incident(DELETION).await;
    h.approve(&id).await;
    h.runner("r1").run(&id).await.expect("run");
    let delete = step(&h.get(&id).await, "delete_instance").clone();
    assert_eq!(delete.status, StepStatus::Done, "{:?}", delete.report);
    assert!(h.fake.instance(PROJECT, ZONE, NODE).is_none(), "recorded done only once the VM is gone");
    let reads = h
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/instances/{NODE}")))
        .count();
    assert!(reads >= 2, "the VM was read until it was gone: {reads}");
    assert!(h.fake.http_errors(404) >= 1, "the executor itself saw the VM gone (404) before recording done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandon_then_delete_against_fake_compute_deletes_directly_once_out_of_the_group() {
    let h = harness(vec![node_vm()]).await;
    let policy = DELETION.replace("on_approval: [delete_instance]", "on_approval: [abandon_instance, delete_instance]");
    let id = h.incident(&policy).await;
    h.approve(&id).await;
    h.runner("r1").run(&id).await.expect("run");
    let incident = h.get(&id).await;
    for name in ["abandon_instance", "delete_instance"] {
        assert_eq!(step(&incident, name).status, StepStatus::Done, "{name}: {:?}", step(&incident, name).report);
    }
    // created-by still names the group after the abandon; membership, not metadata, decides.
    let ops: Vec<String> = h.fake.effects().into_iter().map(|e| e.op_type).collect();
    assert_eq!(ops, ["abandonInstances", "delete"]);
    assert!(h.fake.instance(PROJECT, ZONE, NODE).is_none());
    // The group lost its member through the abandon, not the delete.
    assert_eq!(h.fake.mig_members(PROJECT, ZONE, MIG).expect("group"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_vm_against_fake_compute_gets_ipv6_deny_rules_and_a_clear_word_on_its_ipv6() {
    let h = harness(vec![InstanceSpec { external_ipv6: Some("2600:1900:4000:1::".into()), ..node_vm() }]).await;
    let id = h.incident(&containment()).await;
    h.runner("r1").run(&id).await.expect("run");
    assert_eq!(step(&h.get(&id).await, "quarantine_instance").status, StepStatus::Done);
    let egress6 = h.fake.firewall(PROJECT, "riposte-quarantine-deny-egress-v6-default").expect("IPv6 egress rule");
    assert_eq!((egress6["direction"].as_str(), egress6["priority"].as_i64()), (Some("EGRESS"), Some(0)));
    assert_eq!(egress6["destinationRanges"], json!(["::/0"]));
    let ingress6 = h.fake.firewall(PROJECT, "riposte-quarantine-deny-ingress-v6-default").expect("IPv6 ingress rule");
    assert_eq!((ingress6["sourceRanges"].clone(), ingress6["priority"].as_i64()), (json!(["::/0"]), Some(1)));
    // The IPv4 rules are unchanged.
    assert_eq!(
        h.fake.firewall(PROJECT, "riposte-quarantine-deny-egress-default").expect("v4")["destinationRanges"],
        json!(["0.0.0.0/0"])
    );

    h.approve(&id).await;
    h.runner("r1").run(&id).await.expect("run");
    let removal = step(&h.get(&id).await, "remove_external_ip").clone();
    let StepStatus::Failed { error } = &removal.status else { panic!("{removal:?}") };
    assert!(
        error.contains("removed 34.76.10.20") && error.contains("still has external IPv6 2600:1900:4000:1::"),
        "{error}"
    );
    assert!(h.vm()["networkInterfaces"][0]["accessConfigs"].as_array().is_none_or(|a| a.is_empty()), "IPv4 removed");
}

/// A policy that only takes snapshots, kept in project `vault`.
fn snapshots_in(vault: &str) -> String {
    format!(
        "version: 1\nnotifiers: {{console: {{type: console}}}}\npolicies:\n  - name: evidence\n    match: {{sources: [falco]}}\n    actions: [{{snapshot_disks: {{project: {vault}, guest_flush: true}}}}]\n"
    )
}

/// `snapshot_disks: {project: …}` keeps the evidence in a forensics project: every disk, zonal
/// and regional, is snapshotted there by `snapshots.insert` from its own project; nothing is
/// created in the VM's project; the dry run shows exactly what is sent; the calls in each project
/// need exactly what is declared for it (terraform grants `FORENSICS_PROJECT_PERMISSIONS` in the
/// forensics project); an earlier attempt's snapshot there counts as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_kept_in_the_forensics_project_against_fake_compute() {
    use riposte_core::action::FORENSICS_PROJECT_PERMISSIONS;
    use std::collections::BTreeSet;
    const VAULT: &str = "forensics-vault";
    let h = harness(vec![InstanceSpec { regional_disks: vec!["pv-regional-data".into()], ..node_vm() }]).await;
    h.fake.set_latency("insert", Duration::from_millis(20)); // so the global operations are waited for
    let id = h.incident(&snapshots_in(VAULT)).await;
    // An earlier attempt's snapshot of the boot disk is there already.
    let boot = riposte_core::action::snapshot_name(&id, ZONE, NODE);
    h.fake.add_snapshot(VAULT, &boot, &disk_url(ZONE, NODE), "READY");
    h.runner("r1").run(&id).await.expect("run");
    let incident = h.get(&id).await;
    let snapshot = step(&incident, "snapshot_disks");
    assert_eq!(snapshot.status, StepStatus::Done, "{:?}", snapshot.report);

    let snapshots = h.fake.snapshots();
    assert_eq!(snapshots.len(), 4, "boot, data, scratch and the regional volume: {snapshots:?}");
    for s in &snapshots {
        let link = s["selfLink"].as_str().expect("selfLink");
        assert!(link.contains(&format!("/projects/{VAULT}/global/snapshots/")), "kept in the vault: {link}");
        let source = s["sourceDisk"].as_str().expect("sourceDisk");
        assert!(source.contains(&format!("/projects/{PROJECT}/")), "of the VM's disk: {source}");
        if s["name"] != json!(boot) {
            assert_eq!(s["labels"]["riposte-incident"], json!(riposte_core::requests::incident_label(&id)));
            let zonal = source.contains("/zones/");
            assert_eq!(s.get("guestFlush"), zonal.then_some(&json!(true)), "guest flush for zonal disks only: {s}");
        }
    }
    let effects: Vec<(String, String)> = h.fake.effects().into_iter().map(|e| (e.op_type, e.target)).collect();
    assert_eq!(effects.iter().filter(|(op, _)| op == "createSnapshot").count(), 0, "{effects:?}");
    assert_eq!(
        effects
            .iter()
            .filter(|(op, t)| op == "insert" && t.starts_with(&format!("projects/{VAULT}/global/snapshots/")))
            .count(),
        3,
        "three new snapshots, the boot disk's already there: {effects:?}"
    );
    assert!(snapshot.report.as_ref().expect("report").message.contains(&format!("in {VAULT}")));
    let received = h.fake.requests();
    // Waiting for an operation is a POST that changes nothing: not part of the dry run.
    assert_every_change_sent_was_shown(
        &incident,
        received.iter().filter(|r| !r.path.ends_with("/wait")).map(Sent::from),
    );

    // Least privilege per project: in the vault, exactly what terraform grants there; in the VM's
    // project, what the action declares (the insert needs createSnapshot on the source disk).
    let mut in_vault = BTreeSet::new();
    let mut in_vm_project = BTreeSet::from(["compute.disks.createSnapshot"]);
    for r in &received {
        let p = permission_for(&r.method, &r.path);
        let set = if r.path.starts_with(&format!("/compute/v1/projects/{VAULT}/")) {
            &mut in_vault
        } else {
            &mut in_vm_project
        };
        set.insert(p);
        set.extend(implied_by(p).iter().copied());
    }
    assert_eq!(in_vault, FORENSICS_PROJECT_PERMISSIONS.iter().copied().collect::<BTreeSet<_>>());
    let declared: BTreeSet<&str> = snapshot.action.permissions().iter().copied().collect();
    assert!(in_vm_project.is_subset(&declared), "{in_vm_project:?} ⊄ {declared:?}");
}

/// A snapshot of riposte's name in the forensics project that is of another project's disk (a
/// VM of the same name elsewhere) is never taken for this incident's evidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forensics_snapshot_of_another_projects_disk_is_refused_against_fake_compute() {
    const VAULT: &str = "forensics-vault";
    let h = harness(vec![node_vm()]).await;
    let id = h.incident(&snapshots_in(VAULT)).await;
    let data = riposte_core::action::snapshot_name(&id, ZONE, &format!("{NODE}-data"));
    let elsewhere = disk_url(ZONE, &format!("{NODE}-data")).replace(PROJECT, "someone-else");
    h.fake.add_snapshot(VAULT, &data, &elsewhere, "READY");
    h.runner("r1").run(&id).await.expect("run");
    let snapshot = step(&h.get(&id).await, "snapshot_disks").clone();
    let StepStatus::Failed { error } = &snapshot.status else { panic!("{snapshot:?}") };
    assert!(error.contains(&data) && error.contains("someone-else") && error.contains("does not reuse it"), "{error}");
    assert_eq!(
        h.fake.effects().iter().filter(|e| e.op_type == "insert").count(),
        2,
        "boot and scratch are still taken"
    );
}
