//! The real binary under hostile load:
//! - `GET /healthz` latency while 500 slow connections (half a header each, reopened as the server
//!   closes them) and a flood of unauthenticated intake POSTs are held, against the same
//!   server's `/healthz` alone, measured in the same run;
//! - its peak memory (VmHWM) under the worst bodies within the 1 MiB Falco limit, one at a time
//!   and sixteen at once, each on a fresh server.
//!
//! Run: `cargo bench -p riposte-e2e --bench hostile` (results go into BENCHMARKS.md).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TOKEN: &str = "falco-token-for-the-hostile-benchmark";
const SLOW_CONNECTIONS: usize = 500;
const FLOODERS: usize = 8;
const PROBES: usize = 4;
const PHASE: Duration = Duration::from_secs(6);

/// `riposte serve` (the release build) with intake credentials, on a free port.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_riposte-under-test"))
            .args(["serve", "--state-dir"])
            .arg(dir.path())
            .env("PORT", "0")
            .env("RIPOSTE_LOG", "error")
            .env("RIPOSTE_FALCO_TOKEN", TOKEN)
            .env("RIPOSTE_MONITORING_TOKEN", "m")
            .env("RIPOSTE_PUBSUB_TOKEN", "p")
            .env_remove("K_SERVICE")
            .env_remove("RIPOSTE_POLICY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start riposte");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = loop {
            let line = lines.next().expect("riposte printed its address").expect("line");
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                break url.rsplit(':').next().expect("port").to_string();
            }
        };
        // Keep draining stdout (the console notifier prints every incident).
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()).expect("kB") / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PROBES` clients polling `/healthz` for `PHASE`: requests per second, p50 and p99 in ms.
async fn probe_health(url: &str) -> (f64, f64, f64) {
    let deadline = Instant::now() + PHASE;
    let mut probes = tokio::task::JoinSet::new();
    for _ in 0..PROBES {
        let url = format!("{url}/healthz");
        probes.spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client.get(&url).send().await.expect("healthz");
                assert_eq!(r.status(), 200);
                r.bytes().await.expect("body");
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies: Vec<Duration> = probes.join_all().await.into_iter().flatten().collect();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3;
    (latencies.len() as f64 / PHASE.as_secs_f64(), p(0.5), p(0.99))
}

/// Holds `SLOW_CONNECTIONS` connections that each send half a header, reopening each one the
/// server closes, until `stop`; counts the closes.
fn hold_slow_connections(addr: String, stop: Arc<AtomicBool>, closed: Arc<AtomicUsize>) {
    for _ in 0..SLOW_CONNECTIONS {
        let (addr, stop, closed) = (addr.clone(), stop.clone(), closed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.write_all(b"POST /v1/falco HTTP/1.1\r\nHost: riposte\r\nContent-Le").await;
                let mut sink = [0u8; 256];
                let held = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut sink)).await;
                if held.is_ok() {
                    closed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// `FLOODERS` clients posting the Falco fixture without credentials until `stop`; every answer
/// must be 401. Returns the count.
fn flood_unauthenticated(url: String, stop: Arc<AtomicBool>, sent: Arc<AtomicUsize>) {
    let body = riposte_e2e::intake::fixture("falco/drop-exec-sidekick-customfields.json");
    for _ in 0..FLOODERS {
        let (url, stop, sent, body) = (format!("{url}/v1/falco"), stop.clone(), sent.clone(), body.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                // The server is stopped while the flood goes on: its last requests fail.
                let Ok(r) = client.post(&url).body(body.clone()).send().await else { break };
                assert_eq!(r.status(), 401);
                let _ = r.bytes().await;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// A matching Falco event whose `output_fields` hold `fields` (the rest of the body is small).
fn falco_with(fields: &str) -> Vec<u8> {
    format!(
        r#"{{"rule":"Drop and execute new binary in container","priority":"Critical","output":"x","time":"2026-12-04T10:00:00Z","output_fields":{fields}}}"#
    )
    .into_bytes()
}

/// Bodies just under 1 MiB that cost the most to take apart and keep.
fn worst_bodies() -> Vec<(&'static str, Vec<u8>)> {
    const ROOM: usize = (1 << 20) - 400;
    let zeros = vec!["0"; ROOM / 2].join(",");
    let empties = vec!["[]"; ROOM / 3].join(",");
    let objects = vec!["{}"; ROOM / 3].join(",");
    let names: Vec<String> = (0..2000).map(|i| format!("\"{i:0>120}\":1")).collect();
    // Just within the bound of 65 536 values per document.
    let bounded_objects = vec!["{}"; 65_000].join(",");
    let bounded_strings = vec![format!("\"{}\"", "s".repeat(13)); 65_000].join(",");
    vec![
        ("one 1 MiB string field", falco_with(&format!(r#"{{"s":"{}"}}"#, "A".repeat(ROOM)))),
        (
            "2 000 fields with 120-byte names (at the flattening bounds)",
            falco_with(&format!("{{{}}}", names.join(","))),
        ),
        (
            "an array of 65 000 empty objects (at the bound on values)",
            falco_with(&format!(r#"{{"a":[{bounded_objects}]}}"#)),
        ),
        (
            "an array of 65 000 strings of 13 bytes (at the bound on values)",
            falco_with(&format!(r#"{{"a":[{bounded_strings}]}}"#)),
        ),
        ("an array of 520 000 zeros", falco_with(&format!(r#"{{"a":[{zeros}]}}"#))),
        ("an array of 350 000 empty arrays", falco_with(&format!(r#"{{"a":[{empties}]}}"#))),
        ("an array of 350 000 empty objects", falco_with(&format!(r#"{{"a":[{objects}]}}"#))),
    ]
}

/// Posts `body` `n` times at once; the status codes seen.
async fn post_concurrently(url: &str, body: &[u8], n: usize) -> Vec<u16> {
    let client = reqwest::Client::new();
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..n {
        let request = client.post(format!("{url}/v1/falco")).bearer_auth(TOKEN).body(body.to_vec());
        posts.spawn(async move { request.send().await.expect("post").status().as_u16() });
    }
    let mut codes = posts.join_all().await;
    codes.sort_unstable();
    codes.dedup();
    codes
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = Server::start();
    let (alone_rps, alone_p50, alone_p99) = probe_health(&server.url).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (closed, flooded) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    hold_slow_connections(server.url.trim_start_matches("http://").to_string(), stop.clone(), closed.clone());
    flood_unauthenticated(server.url.clone(), stop.clone(), flooded.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let flood_start = flooded.load(Ordering::Relaxed);
    let (held_rps, held_p50, held_p99) = probe_health(&server.url).await;
    let flood_rate = (flooded.load(Ordering::Relaxed) - flood_start) as f64 / PHASE.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let rss_after_attack = server.peak_rss_mib();
    drop(server);

    println!("| `/healthz`, 4 clients, {} s | requests/s | p50 | p99 |", PHASE.as_secs());
    println!("|---|---|---|---|");
    println!("| alone | {alone_rps:.0} | {alone_p50:.2} ms | {alone_p99:.2} ms |");
    println!(
        "| with {SLOW_CONNECTIONS} slow connections and {FLOODERS} clients flooding unauthenticated POSTs ({flood_rate:.0}/s, all 401) | {held_rps:.0} ({:.2}×) | {held_p50:.2} ms | {held_p99:.2} ms ({:.1}×) |",
        held_rps / alone_rps,
        held_p99 / alone_p99
    );
    println!(
        "\nSlow connections closed by the header timeout during the run: {}; the server's peak RSS: {rss_after_attack:.0} MiB.\n",
        closed.load(Ordering::Relaxed)
    );

    println!(
        "| body (≤ 1 MiB, a matching Falco event) | answer | peak RSS idle → one body | → 16 at once | → 64 at once (the intake budget) |"
    );
    println!("|---|---|---|---|---|");
    for (name, body) in worst_bodies() {
        assert!(body.len() <= 1 << 20, "{name}: {} bytes", body.len());
        let server = Server::start();
        let idle = server.peak_rss_mib();
        let one = post_concurrently(&server.url, &body, 1).await;
        let after_one = server.peak_rss_mib();
        let sixteen = post_concurrently(&server.url, &body, 16).await;
        let after_sixteen = server.peak_rss_mib();
        let budget = post_concurrently(&server.url, &body, 64).await;
        let after_budget = server.peak_rss_mib();
        println!(
            "| {name} ({} KiB) | {one:?}, {sixteen:?}, {budget:?} | {idle:.0} → {after_one:.0} MiB | {after_sixteen:.0} MiB | {after_budget:.0} MiB |",
            body.len() / 1024
        );
    }
}
