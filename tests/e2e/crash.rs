//! kill -9 at every step boundary of a full containment, on the real binary with the real
//! Compute client against the FAKE Compute Engine (which counts effects per requestId), then a
//! restart on the same embedded store: every incident completes and each effect happens once.
//!
//! Crash points inside riposte are named (`riposte_core::crash`, compiled into the test build of
//! the binary only); "after an effect, before its answer" is the fake holding its answer back.

use std::collections::HashMap;
use std::path::Path;

use riposte_core::incident::{Incident, StepStatus};
use riposte_e2e::fake_compute::FakeCompute;
use riposte_e2e::scenario::{NODE, PROJECT, ZONE, containment_policy, three_disk_vm};

use std::time::Duration;

use crate::helpers::{TestBinary, eventually, eventually_within, fixture, spawn_binary};

/// Where the process dies.
enum Crash {
    /// A named crash point inside riposte.
    At(&'static str),
    /// Right after the fake applied an operation of this type, before riposte hears back.
    AfterEffect(&'static str),
}

/// The store the process keeps its state in: `None` for the embedded file, or a Firestore
/// emulator host.
fn env<'a>(
    fake: &'a str,
    policy: &'a str,
    crash: Option<&'a str>,
    firestore: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("RIPOSTE_EXECUTOR", "google-cloud"),
        ("RIPOSTE_COMPUTE_ENDPOINT", fake),
        ("RIPOSTE_POLICY", policy),
        ("RIPOSTE_STEP_LEASE", "2s"),
        ("RIPOSTE_SWEEP_INTERVAL", "1s"),
    ];
    if let Some(point) = crash {
        env.push(("RIPOSTE_CRASH_AT", point));
    }
    if let Some(host) = firestore {
        env.extend([
            ("RIPOSTE_STORE", "firestore"),
            ("FIRESTORE_EMULATOR_HOST", host),
            ("GOOGLE_CLOUD_PROJECT", "crash-tests"),
        ]);
    }
    env
}

async fn incidents(app: &TestBinary) -> Vec<Incident> {
    let client = reqwest::Client::new();
    let list: Vec<serde_json::Value> =
        client.get(format!("{}/v1/incidents", app.url)).send().await.expect("list").json().await.expect("json");
    let mut out = Vec::new();
    for summary in list {
        let id = summary["id"].as_str().expect("id");
        out.push(
            client
                .get(format!("{}/v1/incidents/{id}", app.url))
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("incident"),
        );
    }
    out
}

/// What a scenario ended with.
struct Outcome {
    /// Steps done after the restart (of 4).
    done: usize,
    /// Effects the fake applied.
    effects: usize,
    /// requestIds that took effect more than once.
    repeated: usize,
    /// The effects, in order, for failure messages.
    ops: Vec<String>,
    /// requestIds sent again by the restarted process and answered with the existing operation.
    replays: usize,
    /// From the restart to every step done.
    took: Duration,
}

/// Runs one crash scenario against a fresh fake, in `dir`, on the embedded store or Firestore.
async fn crash_and_resume(crash: &Crash, dir: &Path, firestore: Option<&str>) -> Outcome {
    let fake = FakeCompute::start().await;
    fake.add_instance(three_disk_vm(NODE, 1));
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, containment_policy(&[])).expect("policy");
    let state = dir.join("state");
    let (url, policy) = (fake.url(), policy.to_str().expect("utf8").to_string());

    let crash_at = match crash {
        Crash::At(point) => Some(*point),
        Crash::AfterEffect(op) => {
            fake.stall_after_effect(op);
            None
        }
    };
    let doomed = spawn_binary(&state, &env(&url, &policy, crash_at, firestore));
    let post = tokio::spawn({
        let url = doomed.url.clone();
        async move {
            // At `intake-recorded` the process dies before answering: the sender sees an error.
            let _ = reqwest::Client::new()
                .post(format!("{url}/v1/falco"))
                .header("content-type", "application/json")
                .body(fixture("falco/drop-exec-sidekick-customfields.json"))
                .send()
                .await;
        }
    });
    eventually(|| async {
        let reached = match crash {
            Crash::At(point) => doomed.printed(&format!("CRASH-POINT {point}")),
            Crash::AfterEffect(op) => fake.effects().iter().any(|e| e.op_type == *op),
        };
        reached.then_some(())
    })
    .await;
    doomed.kill9();
    post.abort();

    let resumed = spawn_binary(&state, &env(&url, &policy, None, firestore));
    let started = std::time::Instant::now();
    let incident = eventually_within(Duration::from_secs(120), || async {
        let mut all = incidents(&resumed).await;
        let done = all.len() == 1 && all[0].steps.iter().all(|s| s.status == StepStatus::Done);
        done.then(|| all.remove(0))
    })
    .await;
    let took = started.elapsed();
    resumed.stop();

    let effects = fake.effects();
    let mut per_request: HashMap<String, usize> = HashMap::new();
    for e in &effects {
        *per_request.entry(e.request_id.clone().expect("every effect carries a requestId")).or_default() += 1;
    }
    let repeated = per_request.values().filter(|n| **n > 1).count();
    // The state a human would check: one snapshot per disk, three rules, the tag once.
    assert_eq!(fake.snapshots().len(), 3);
    for rule in [
        "riposte-quarantine-deny-egress-default",
        "riposte-quarantine-deny-ingress-default",
        "riposte-forensic-ssh-default",
    ] {
        assert!(fake.firewall(PROJECT, rule).is_some(), "{rule}");
    }
    let vm = fake.instance(PROJECT, ZONE, NODE).expect("vm");
    let tags: Vec<&str> = vm["tags"]["items"].as_array().expect("tags").iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(tags, ["riposte-quarantine"]);
    assert_eq!(vm["labels"]["riposte-state"], "quarantined");
    // After "applied, answer lost" for a call the restarted process cannot see through the VM
    // (a snapshot or rule whose operation it never heard of), it sends the same requestId again.
    if let Crash::AfterEffect(op @ ("createSnapshot" | "insert")) = crash {
        let stalled = effects.iter().find(|e| e.op_type == *op).and_then(|e| e.request_id.clone()).expect("stalled");
        assert!(fake.replays().contains(&stalled), "{op}: the resumed process reused requestId {stalled}");
    }
    let ops: Vec<String> = effects.iter().map(|e| e.op_type.clone()).collect();
    let done = incident.steps.iter().filter(|s| s.status == StepStatus::Done).count();
    Outcome { done, effects: effects.len(), repeated, ops, replays: fake.replays().len(), took }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_every_step_boundary_against_fake_compute_completes_and_acts_once() {
    let scenarios = [
        ("alert durable, answer not sent", Crash::At("intake-recorded")),
        ("steps claimed, nothing sent", Crash::At("step-claimed")),
        ("createSnapshot applied, answer not received", Crash::AfterEffect("createSnapshot")),
        ("setLabels applied, answer not received", Crash::AfterEffect("setLabels")),
        ("firewall insert applied, answer not received", Crash::AfterEffect("insert")),
        ("setTags applied, answer not received", Crash::AfterEffect("setTags")),
        ("steps executed, not recorded", Crash::At("step-executed")),
        ("steps recorded", Crash::At("step-recorded")),
    ];
    println!(
        "| crash point | steps done after restart | effects | requestIds applied twice | requestIds re-sent (no effect) | restart → done |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, crash) in &scenarios {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = crash_and_resume(crash, dir.path(), None).await;
        println!(
            "| {name} | {}/4 | {} | {} | {} | {:.1} s |",
            o.done,
            o.effects,
            o.repeated,
            o.replays,
            o.took.as_secs_f64()
        );
        assert_eq!(o.done, 4, "{name}");
        assert_eq!(o.repeated, 0, "{name}: {:?}", o.ops);
        // 3 snapshots + setLabels + 2 quarantine rules + setTags + the SSH rule.
        assert_eq!(o.effects, 8, "{name}: each effect once: {:?}", o.ops);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_on_the_firestore_store_against_fake_compute_completes_and_acts_once() {
    // The Cloud Run configuration: state in Firestore (the real emulator). riposte's Firestore
    // writes are commits conditional on what was read, not transactions: a killed process leaves
    // no lock behind, and the resumed one carries on as soon as the step's lease lapses.
    let scenarios = [
        ("createSnapshot applied, answer not received", Crash::AfterEffect("createSnapshot")),
        ("steps executed, not recorded", Crash::At("step-executed")),
    ];
    for (name, crash) in &scenarios {
        let emulator = crate::helpers::Emulator::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let o = crash_and_resume(crash, dir.path(), Some(&emulator.host)).await;
        println!(
            "| {name} (Firestore) | {}/4 | {} | {} | {} | {:.1} s |",
            o.done,
            o.effects,
            o.repeated,
            o.replays,
            o.took.as_secs_f64()
        );
        assert_eq!((o.done, o.repeated, o.effects), (4, 0, 8), "{name}: {:?}", o.ops);
    }
}
