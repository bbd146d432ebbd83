//! Alert storms through the HTTP intake, as a real incident brings them: 16 concurrent senders
//! posting the drop-and-execute Falco alert for a fixed time, on the embedded store and on the
//! real Firestore emulator (one instance, and two instances sharing it). Every figure is also
//! given as a ratio to the HTTP ceiling measured in the same run with the same senders: the same
//! router's `GET /healthz`. The embedded storms and the ceiling take turns in short rounds, each
//! ratio against its own round's ceiling; the servers have a runtime of their own, apart from
//! the senders', as `riposte serve` has its process.
//!
//! The servers record metrics and log as `riposte serve` does; the last rows measure what metrics,
//! exported traces and Cloud Run's JSON logs cost.
//!
//! Run: `cargo bench -p riposte-e2e --bench storm` (results go into BENCHMARKS.md; the Firestore
//! rows need the google-cloud-cli emulator, as the tests do; `-- embedded` runs the embedded rows
//! only, `-- firestore` the Firestore rows only (against a ceiling measured once);
//! `RIPOSTE_STORM_SENDERS=32` changes the number of senders, 16 by default, as the targets
//! say; `TMPDIR=/dev/shm` puts the embedded stores on tmpfs, where a flush costs nothing: the same
//! code without the wait for the disk).

use std::sync::Arc;
use std::time::{Duration, Instant};

use riposte::logging::LogFormat;
use riposte_core::incident::StepStatus;
use riposte_core::metrics::Metrics;
use riposte_core::policy::PolicySet;
use riposte_core::store::{EmbeddedStore, Store};
use riposte_e2e::emulator::Emulator;
use riposte_e2e::intake::{fixture, intake_state_with_metrics};
use riposte_ingest::app;

/// Concurrent senders: 16, or `RIPOSTE_STORM_SENDERS`. More senders than 16 show how far the
/// embedded rate is held by the closed loop (each sender waits for its answer, and so for the
/// commit, before it sends again) rather than by what the server can take.
static SENDERS: std::sync::LazyLock<usize> =
    std::sync::LazyLock::new(|| match std::env::var("RIPOSTE_STORM_SENDERS") {
        Err(_) => 16,
        Ok(n) => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| panic!("RIPOSTE_STORM_SENDERS={n:?} is not a positive number")),
    });
const SCENARIO: Duration = Duration::from_secs(6);
const FIXTURE: &str = "falco/drop-exec-sidekick-customfields.json";

/// What the senders saw.
struct Load {
    answered: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU time of this whole process (senders and server) per answered request.
    cpu_us: f64,
}

/// CPU time used by this process so far (user + system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // Linux reports them in clock ticks of 1/100 s.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// `SENDERS` senders, each on its own connection, send requests to `urls` (round robin by sender)
/// for `SCENARIO`; a POST when `body` is given, else a GET. Every answer must be 200.
async fn load(urls: &[String], path: &str, body: Option<Vec<u8>>) -> Load {
    load_for(SCENARIO, urls, path, body).await
}

async fn load_for(duration: Duration, urls: &[String], path: &str, body: Option<Vec<u8>>) -> Load {
    // Each sender's client and URL are made before the clock starts, as a load generator's are:
    // a reqwest client reads the system's CA bundle when it is built (~1 % of a round's CPU for
    // 16 of them), and a URL given as text is parsed again for every request.
    let senders: Vec<(reqwest::Client, reqwest::Url)> = (0..*SENDERS)
        .map(|s| {
            let url = format!("{}{path}", urls[s % urls.len()]).parse().expect("url");
            (reqwest::Client::new(), url)
        })
        .collect();
    let (started, cpu) = (Instant::now(), cpu_time());
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (client, url) in senders {
        let body = body.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let request = match &body {
                    Some(b) => client.post(url.clone()).body(b.clone()),
                    None => client.get(url.clone()),
                };
                let r = request.send().await.expect("send");
                assert_eq!(r.status(), 200, "{url}");
                r.bytes().await.expect("answer");
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.expect("sender"));
    }
    let elapsed = started.elapsed();
    let cpu = (cpu_time() - cpu).as_secs_f64();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3;
    Load {
        answered: latencies.len(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: p(0.5),
        p99_ms: p(0.99),
        cpu_us: cpu * 1e6 / latencies.len() as f64,
    }
}

/// The intake router over `store` on a free port, recording metrics as `riposte serve` does, in
/// the servers' runtime.
async fn serve(store: Arc<dyn Store>) -> String {
    servers().spawn(serve_with(store, Metrics::new())).await.expect("server")
}

/// The runtime the servers run in: two workers of their own, as `riposte serve` has in its
/// process, apart from the senders' (as a load generator's threads are).
fn servers() -> &'static tokio::runtime::Runtime {
    static SERVERS: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    SERVERS.get_or_init(|| runtime_with(tracing::dispatcher::get_default(tracing::Dispatch::clone)))
}

async fn serve_with(store: Arc<dyn Store>, metrics: Metrics) -> String {
    let policies = PolicySet::from_yaml(riposte::EXAMPLE_POLICY).expect("policy");
    riposte_e2e::intake::serve_on_loopback(app(intake_state_with_metrics(store, policies, metrics))).await
}

/// How a server's spans are exported.
#[derive(Clone, Copy, PartialEq)]
enum Tracing {
    Off,
    /// Every alert's trace.
    Every,
    /// One trace in a hundred (as `OTEL_TRACES_SAMPLER=parentbased_traceidratio` with
    /// `OTEL_TRACES_SAMPLER_ARG=0.01` does; on Cloud Run, `X-Cloud-Trace-Context`'s `o=0` takes
    /// the path of the 99 others).
    Sampled,
}

/// Logs as `riposte serve` does (at info) in `format`, here into a sink.
fn logs<S>(format: LogFormat) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    riposte::logging::layer(format, std::io::sink).with_filter(tracing_subscriber::filter::LevelFilter::INFO)
}

/// `riposte serve`'s logs on a machine of one's own: text, and not to a terminal.
const TEXT: LogFormat = LogFormat::Text { ansi: false };

/// `riposte serve`'s logs on Cloud Run.
const CLOUD_LOGGING: LogFormat = LogFormat::CloudLogging { project: None };

/// A subscriber as `riposte serve` builds it (logging::init): logs, and traces exported over
/// OTLP/HTTP to a local collector that takes and drops them (a fake: no OpenTelemetry Collector
/// here) as `tracing` says.
async fn subscriber(tracing: Tracing, format: LogFormat) -> tracing::Dispatch {
    use tracing_subscriber::layer::SubscriberExt as _;
    let sampling = |ratio| riposte::traces::Sampling { ratio, follow_sender: true };
    let traces = match tracing {
        Tracing::Off => None,
        Tracing::Every => Some(sampling(1.0)),
        Tracing::Sampled => Some(sampling(0.01)),
    };
    let otel = match traces {
        Some(sampling) => {
            let collector = axum::Router::new().route("/v1/traces", axum::routing::post(|| async { "" }));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
            tokio::spawn(async move { axum::serve(listener, collector).await });
            let traces = riposte::traces::Traces::exporting_to(&endpoint, sampling).expect("exporter");
            Some(traces.layer())
        }
        None => None,
    };
    tracing::Dispatch::new(tracing_subscriber::registry().with(otel).with(logs(format)))
}

/// A runtime of two workers whose threads all use `dispatch`: a server in it is traced as if it
/// were alone in its process (the subscriber of a process is installed once; per-layer filters
/// cannot be swapped in afterwards).
fn runtime_with(dispatch: tracing::Dispatch) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // For the thread's whole life.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .expect("runtime")
}

/// The mean of `f` over `loads`.
fn mean(loads: &[Load], f: fn(&Load) -> f64) -> f64 {
    loads.iter().map(f).sum::<f64>() / loads.len() as f64
}

/// The median of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// What metrics, traces and the log format cost: duplicates on five embedded servers, each in
/// its own runtime with its own subscriber: one with neither metrics nor traces, one recording
/// metrics only, two recording metrics and exporting every trace or one in a hundred (all four
/// logging text, as `riposte serve` does on a machine of one's own), and one recording metrics
/// and logging JSON, as on Cloud Run. They are loaded in turn for `RUN` each, `ROUNDS` times, so
/// that the machine's drift falls on all alike; a run's CPU includes the `SETTLE` after it, while
/// its spans are exported. The ratios to "off" are the medians of each round's ratio (a
/// neighbour's burst then moves one round, not the figure); alerts/s and CPU per alert (senders
/// and server) are the means.
async fn instrumentation_cost(ceiling: f64) {
    const RUN: Duration = Duration::from_secs(3);
    const SETTLE: Duration = Duration::from_secs(1);
    let configs = [
        (false, Tracing::Off, TEXT, "off"),
        (true, Tracing::Off, TEXT, "metrics on, traces off"),
        (true, Tracing::Every, TEXT, "metrics on, every trace"),
        (true, Tracing::Sampled, TEXT, "metrics on, 1 trace in 100"),
        (true, Tracing::Off, CLOUD_LOGGING, "metrics on, traces off, JSON logs as on Cloud Run"),
    ];
    let mut servers = Vec::new();
    for (metrics, tracing, format, _) in &configs {
        let metrics = if *metrics { Metrics::new() } else { Metrics::off() };
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let runtime = runtime_with(subscriber(*tracing, format.clone()).await);
        let url = runtime.spawn(serve_with(store.clone(), metrics)).await.expect("server");
        open_and_contain(&url, &store).await;
        servers.push((url, dir, runtime));
    }
    let mut runs: Vec<Vec<Load>> = configs.iter().map(|_| Vec::new()).collect();
    // A Williams design: over its 10 rounds every server runs right after every other exactly
    // twice, and in every place twice, so what one leaves behind (exports, a warm cache, a
    // neighbour's burst) falls on all alike. A plain rotation puts one server right after the
    // same other one every round. For an odd number of servers the design is the rotations of
    // `WILLIAMS` and then the same reversed.
    const WILLIAMS: [usize; 5] = [0, 1, 4, 2, 3];
    const ROUNDS: usize = 2 * WILLIAMS.len();
    assert_eq!(configs.len(), WILLIAMS.len(), "a Williams design of another size is needed");
    for round in 0..ROUNDS {
        let mut order = WILLIAMS.map(|k| (k + round) % configs.len());
        if round >= WILLIAMS.len() {
            order.reverse();
        }
        for i in order {
            let cpu = cpu_time();
            let mut run = load_for(RUN, std::slice::from_ref(&servers[i].0), "/v1/falco", Some(fixture(FIXTURE))).await;
            // Spans still queued are exported after the load: their CPU is this run's.
            tokio::time::sleep(SETTLE).await;
            run.cpu_us = (cpu_time() - cpu).as_secs_f64() * 1e6 / run.answered as f64;
            runs[i].push(run);
        }
    }
    for (i, (_, _, _, name)) in configs.iter().enumerate() {
        let rate = median(runs[i].iter().zip(&runs[0]).map(|(a, off)| a.per_second / off.per_second).collect());
        let cpu = median(runs[i].iter().zip(&runs[0]).map(|(a, off)| a.cpu_us / off.cpu_us).collect());
        println!(
            "| embedded duplicates, {name} ({ROUNDS} alternating runs of {} s) | {:.0} | {:.3}× | | | | {:.0} µs | {rate:.3}× the alerts/s, {cpu:.3}× the CPU per alert of off (medians of the rounds) |",
            RUN.as_secs(),
            mean(&runs[i], |l| l.per_second),
            mean(&runs[i], |l| l.per_second) / ceiling,
            mean(&runs[i], |l| l.cpu_us),
        );
    }
    for (_, _, runtime) in servers {
        runtime.shutdown_background();
    }
}

/// When (after `since`) every automatic step of `id` had finished, polled every 5 ms during the storm.
async fn contained_at(store: Arc<dyn Store>, id: String, since: Instant) -> Duration {
    loop {
        if let Ok(Some(i)) = store.get(&id).await
            && i.steps
                .iter()
                .filter(|s| !s.gated)
                .all(|s| matches!(s.status, StepStatus::Done | StepStatus::Skipped { .. }))
        {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Opens the incident with one alert and waits until its automatic steps are done, so that the
/// storm after it is duplicates only.
async fn open_and_contain(url: &str, store: &Arc<dyn Store>) {
    let r = reqwest::Client::new().post(format!("{url}/v1/falco")).body(fixture(FIXTURE)).send().await.expect("send");
    let answer: serde_json::Value = r.json().await.expect("json");
    let id = answer["incident_id"].as_str().expect("incident").to_string();
    contained_at(store.clone(), id, Instant::now()).await;
}

/// A storm whose first alert opens the incident: the load, and how long after the first alert
/// every automatic step was done (while the storm went on).
async fn opening_storm(urls: &[String], store: &Arc<dyn Store>) -> (Load, Option<Duration>) {
    opening_storm_for(SCENARIO, urls, store).await
}

async fn opening_storm_for(duration: Duration, urls: &[String], store: &Arc<dyn Store>) -> (Load, Option<Duration>) {
    let store = store.clone();
    let body = fixture(FIXTURE);
    let storm = tokio::spawn({
        let urls = urls.to_vec();
        async move { load_for(duration, &urls, "/v1/falco", Some(body)).await }
    });
    // Learn the incident from the store as soon as it exists, and time its containment from the
    // storm's start.
    let started = Instant::now();
    let id = loop {
        if let Ok(list) = store.list(1).await
            && let Some(first) = list.first()
        {
            break first.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let contained = tokio::spawn(contained_at(store, id, started));
    let load = storm.await.expect("storm");
    let contained = tokio::time::timeout(Duration::from_secs(30), contained).await.ok().and_then(Result::ok);
    (load, contained)
}

fn row(name: &str, load: &Load, ceiling: f64, contained: Option<Duration>) {
    let contained = contained.map_or("—".to_string(), |d| format!("{} ms", d.as_millis()));
    println!(
        "| {name} | {:.0} | {:.3}× | {:.1} ms | {:.1} ms | {} | {:.0} µs | {contained} |",
        load.per_second,
        load.per_second / ceiling,
        load.p50_ms,
        load.p99_ms,
        load.answered,
        load.cpu_us,
    );
}

fn header(durations: &str) {
    println!(
        "| scenario ({} senders; {durations}) | alerts/s | × ceiling | p50 | p99 | answered | CPU per request (senders + server) | first alert → automatic steps done |",
        *SENDERS
    );
    println!("|---|---|---|---|---|---|---|---|");
}

/// The ceiling alone, `SCENARIO` long, for a run of the Firestore rows only; returns it.
async fn ceiling_alone() -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = serve(Arc::new(EmbeddedStore::open(dir.path()).expect("store"))).await;
    let ceiling = load(&[url], "/healthz", None).await;
    header(&format!("{} s each", SCENARIO.as_secs()));
    row("HTTP ceiling: `GET /healthz` of the same router", &ceiling, ceiling.per_second, None);
    ceiling.per_second
}

/// The embedded rows: 6 rounds (`ORDERS`) of the ceiling, a storm that opens a new incident (each
/// round on a fresh store) and duplicates of an open incident, `RUN` each, in an order that
/// changes every round (two Latin squares, the second the mirror of the first: over 6 rounds each
/// scenario runs first, second and third twice, and right after each other one as often). The
/// machine's drift, which moves the ceiling by 2× between runs, then falls on each scenario's
/// ratio alike: each is the median of the rounds' ratios to that round's ceiling. Returns the
/// mean ceiling.
async fn embedded_rounds() -> f64 {
    const RUN: Duration = Duration::from_secs(3);
    const ORDERS: [[usize; 3]; 6] = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 2, 1], [1, 0, 2]];
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let url = serve(embedded.clone()).await;
    open_and_contain(&url, &embedded).await;
    let (mut ceilings, mut openings, mut duplicates) = (Vec::new(), Vec::new(), Vec::new());
    let mut steps_done = Vec::new();
    for order in ORDERS {
        for scenario in order {
            match scenario {
                0 => ceilings.push(load_for(RUN, std::slice::from_ref(&url), "/healthz", None).await),
                1 => {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let fresh: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
                    let (opening, contained) = opening_storm_for(RUN, &[serve(fresh.clone()).await], &fresh).await;
                    openings.push(opening);
                    steps_done.extend(contained);
                }
                _ => {
                    let body = Some(fixture(FIXTURE));
                    duplicates.push(load_for(RUN, std::slice::from_ref(&url), "/v1/falco", body).await);
                }
            }
        }
    }
    let ratios = |loads: &[Load]| loads.iter().zip(&ceilings).map(|(l, c)| l.per_second / c.per_second).collect();
    let spread = |values: Vec<f64>| {
        let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        format!("{:.3}× ({lo:.3}–{hi:.3})", median(values))
    };
    let rounds = ORDERS.len();
    header(&format!("embedded: {rounds} interleaved rounds of {} s, others {} s", RUN.as_secs(), SCENARIO.as_secs()));
    let ceiling = mean(&ceilings, |l| l.per_second);
    for (name, loads, ratio, steps) in [
        ("HTTP ceiling: `GET /healthz` of the same router", &ceilings, "1×".to_string(), String::new()),
        (
            "embedded: a storm that opens a new incident",
            &openings,
            spread(ratios(&openings)),
            match steps_done.len() {
                0 => "not within 30 s".to_string(),
                n => format!(
                    "{:.0} ms ({n} of {rounds} rounds)",
                    median(steps_done.iter().map(|d| d.as_secs_f64() * 1e3).collect())
                ),
            },
        ),
        ("embedded: duplicates of an open incident", &duplicates, spread(ratios(&duplicates)), "—".to_string()),
    ] {
        println!(
            "| {name} | {:.0} | {ratio} | {:.1} ms | {:.1} ms | {} | {:.0} µs | {steps} |",
            mean(loads, |l| l.per_second),
            median(loads.iter().map(|l| l.p50_ms).collect()),
            median(loads.iter().map(|l| l.p99_ms).collect()),
            loads.iter().map(|l| l.answered).sum::<usize>(),
            mean(loads, |l| l.cpu_us),
        );
    }
    ceiling
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        {
            use tracing_subscriber::layer::SubscriberExt as _;
            use tracing_subscriber::util::SubscriberInitExt as _;
            tracing_subscriber::registry().with(logs(TEXT)).init();
        }
        let only = |rows: &str| std::env::args().any(|a| a == rows);
        // `-- firestore`: the Firestore rows only, against a ceiling measured once.
        let c = if only("firestore") {
            ceiling_alone().await
        } else {
            let c = embedded_rounds().await;
            instrumentation_cost(c).await;
            c
        };
        // `-- embedded`: the embedded rows only.
        if only("embedded") {
            return;
        }

        let emulator = Emulator::start().await;
        // The emulator is a JVM: let it compile its hot paths before anything is measured.
        let warm = emulator.store("bench-warm-up");
        let _ = opening_storm(&[serve(warm.clone()).await], &warm).await;
        let one = emulator.store("bench-duplicates");
        let one_url = serve(one.clone()).await;
        open_and_contain(&one_url, &one).await;
        let duplicates = load(&[one_url], "/v1/falco", Some(fixture(FIXTURE))).await;
        row("Firestore emulator: duplicates of an open incident", &duplicates, c, None);

        let fresh = emulator.store("bench-opening");
        let (opening, contained) = opening_storm(&[serve(fresh.clone()).await], &fresh).await;
        row("Firestore emulator: a storm that opens a new incident", &opening, c, contained);

        let (a, b) = (emulator.store("bench-two"), emulator.store("bench-two"));
        let urls = [serve(a.clone()).await, serve(b).await];
        let (opening, contained) = opening_storm(&urls, &a).await;
        row("Firestore emulator, two instances: a storm that opens a new incident", &opening, c, contained);
    });
}
