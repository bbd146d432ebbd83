//! Intake benchmarks: parse, match + plan, durable record (new incidents and an alert storm), and
//! full HTTP round trips through the router on loopback.
//!
//! Run: `cargo bench -p riposte-e2e --bench intake` (results go into BENCHMARKS.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;
use jiff::Timestamp;
use riposte_core::plan::{incident_key, plan_incident};
use riposte_core::policy::PolicySet;
use riposte_core::sources::SourceKind;
use riposte_core::store::{EmbeddedStore, Store};
use riposte_e2e::intake::{RecordOne, fixture, intake_state};
use riposte_ingest::app;

const FIXTURES: [(&str, &str); 3] = [
    ("falco", "falco/drop-exec-sidekick-customfields.json"),
    ("monitoring", "monitoring/incident-gce-cpu-open-critical.json"),
    ("pubsub", "pubsub/push-falco-container-log.json"),
];

/// Prints one result line: time per operation and operations per second.
fn report(name: &str, per: Duration) {
    println!("{name:<55} {:>10.2} µs/op {:>12.0} ops/s", per.as_secs_f64() * 1e6, 1.0 / per.as_secs_f64());
}

/// Runs `f` repeatedly for about `budget` and prints the mean time per call.
fn bench(name: &str, budget: Duration, mut f: impl FnMut()) {
    for _ in 0..100 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    report(name, start.elapsed() / n as u32);
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let policies = PolicySet::from_yaml(riposte::EXAMPLE_POLICY).expect("policy");
    let headers = HeaderMap::new();
    let budget = Duration::from_secs(2);

    for (kind, rel) in FIXTURES {
        let body = fixture(rel);
        let kind: SourceKind = kind.parse().expect("kind");
        bench(&format!("parse {rel}"), budget, || {
            std::hint::black_box(kind.parse(&body, &headers).expect("parse"));
        });
        let alert = kind.parse(&body, &headers).expect("parse").remove(0);
        // What a duplicate costs before the store: it is matched and keyed, never planned.
        bench(&format!("match + key {rel}"), budget, || {
            for m in policies.matches(&alert) {
                std::hint::black_box(incident_key(m, &alert));
            }
        });
        bench(&format!("match + plan {rel}"), budget, || {
            for m in policies.matches(&alert) {
                std::hint::black_box(plan_incident(m, &policies.defaults, &alert, Timestamp::now()));
            }
        });
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let body = fixture("falco/drop-exec-sidekick-customfields.json");
        let alert = SourceKind::Falco.parse(&body, &headers).expect("parse").remove(0);
        let policy = policies.matches(&alert)[0];

        // An alert storm: every alert joins one open incident (the common case under attack).
        let n = 2000;
        let start = Instant::now();
        for _ in 0..n {
            let now = Timestamp::now();
            store.record_alert(plan_incident(policy, &policies.defaults, &alert, now), now).await.expect("record");
        }
        report("store: duplicate alert (+1, fsync)", start.elapsed() / n);

        // Distinct incidents: each alert opens one.
        let start = Instant::now();
        for i in 0..n {
            let now = Timestamp::now();
            let mut incident = plan_incident(policy, &policies.defaults, &alert, now);
            incident.key = format!("bench-{i}");
            store.record_alert(incident, now).await.expect("record");
        }
        report("store: new incident (fsync)", start.elapsed() / n);

        // HTTP round trips through the router, 16 concurrent clients, storm of one alert.
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let state = intake_state(store, policies.clone());
        let url = format!("{}/v1/falco", riposte_e2e::intake::serve_on_loopback(app(state)).await);
        let client = reqwest::Client::new();
        let total = 4000;
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                for _ in 0..total / 16 {
                    let t = Instant::now();
                    let r = client.post(&url).body(body.clone()).send().await.expect("send");
                    assert_eq!(r.status(), 200);
                    let _ = r.bytes().await;
                    latencies.push(t.elapsed());
                }
                latencies
            });
        }
        let mut latencies = Vec::new();
        while let Some(l) = tasks.join_next().await {
            latencies.extend(l.expect("task"));
        }
        let elapsed = start.elapsed();
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3;
        println!(
            "{:<55} {:>10.0} req/s   p50 {:.2} ms  p99 {:.2} ms",
            "HTTP POST /v1/falco, 16 clients, one-alert storm",
            total as f64 / elapsed.as_secs_f64(),
            p(0.5),
            p(0.99)
        );
    });
    println!("{:<55} {:>10.1} MiB", "peak resident memory of the whole benchmark", peak_rss_mib());
}
