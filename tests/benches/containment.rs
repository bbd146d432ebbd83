//! Full containment of a GKE node's VM with three disks against the FAKE Compute Engine, with
//! injected operation latencies: how close does riposte get to the critical path?
//!
//! Run: `cargo bench -p riposte-e2e --bench containment` (results go into BENCHMARKS.md).
//!
//! The four automatic steps (snapshot_disks, label_instance, quarantine_instance,
//! allow_forensic_ssh) run concurrently and each snapshots / creates concurrently inside, so the
//! longest dependent chain of operations bounds the total: the snapshot (600 ms) against
//! firewall insert then setTags (300 + 200 ms). Doing the same work one call at a time costs the
//! sum of every operation's latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use riposte_cloud::backoff::Backoff;
use riposte_cloud::compute::{ComputeExecutor, ComputeSettings, RetryBudget};
use riposte_core::incident::StepStatus;
use riposte_core::notify::Notifiers;
use riposte_core::policy::PolicySet;
use riposte_core::runner::Runner;
use riposte_core::sources::SourceKind;
use riposte_core::store::{EmbeddedStore, Store};
use riposte_e2e::fake_compute::FakeCompute;
use riposte_e2e::intake::{fixture, record_incident};
use riposte_e2e::scenario::{NODE, containment_policy, three_disk_vm};

/// Operation latencies injected into the fake (how long each operation stays RUNNING).
const LATENCIES: [(&str, u64); 4] = [("createSnapshot", 600), ("setLabels", 200), ("insert", 300), ("setTags", 200)];
/// Round-trip time added to every HTTP answer, as from Cloud Run to the Compute API.
const RTT: Duration = Duration::from_millis(5);

fn latency(op: &str) -> u64 {
    LATENCIES.iter().find(|(o, _)| *o == op).map_or(0, |(_, ms)| *ms)
}

async fn one_containment() -> Duration {
    let fake = FakeCompute::start().await;
    fake.add_instance(three_disk_vm(NODE, 1));
    for (op, ms) in LATENCIES {
        fake.set_latency(op, Duration::from_millis(ms));
    }
    fake.set_request_latency(RTT);
    let settings = ComputeSettings {
        endpoint: fake.url(),
        retry: RetryBudget {
            backoff: Backoff { initial: Duration::from_millis(50), max: Duration::from_secs(1) },
            total: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
        },
        operation_deadline: Duration::from_secs(60),
    };
    let anonymous = google_cloud_auth::credentials::anonymous::Builder::new().build();
    let executor = Arc::new(ComputeExecutor::new(settings, Some(anonymous)).await.expect("executor"));
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let policies = PolicySet::from_yaml(&containment_policy(&[])).expect("policy");
    let body = fixture("falco/drop-exec-sidekick-customfields.json");
    let (id, _) = record_incident(store.as_ref(), &policies, SourceKind::Falco, &body).await;
    let runner = Runner::new(store.clone(), executor, Notifiers::none(), "bench".into());

    let start = Instant::now();
    let finished = runner.run(&id).await.expect("run");
    let took = start.elapsed();
    let incident = store.get(&id).await.expect("get").expect("incident");
    assert_eq!(finished, 4);
    assert!(incident.steps.iter().all(|s| s.status == StepStatus::Done), "{:?}", incident.steps);
    assert_eq!(fake.snapshots().len(), 3);
    took
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let critical = latency("createSnapshot").max(latency("insert") + latency("setTags")).max(latency("setLabels"));
    let sequential = 3 * latency("createSnapshot") + latency("setLabels") + 3 * latency("insert") + latency("setTags");
    let runs: Vec<Duration> = (0..7).map(|_| runtime.block_on(one_containment())).collect();
    let mut ms: Vec<f64> = runs.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    println!("full containment, 3 disks, {} ms RTT per call, {} runs", RTT.as_millis(), ms.len());
    println!("  operation latencies: {LATENCIES:?}");
    println!("  critical path (longest chain of operations): {critical} ms");
    println!(
        "  one call at a time (sum of operations):      {sequential} ms ({:.2}x)",
        sequential as f64 / critical as f64
    );
    println!("  measured: min {:.0} ms, median {median:.0} ms, max {:.0} ms", ms[0], ms[ms.len() - 1]);
    println!("  median / critical path: {:.3}x", median / critical as f64);
}
