//! `riposte serve`: the intake endpoints on the embedded store, with the dry-run executor (the
//! default) or the Google Cloud one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{EnvConfig, Lookup, Platform, StoreChoice, default_state_dir, vars};
use crate::startup::{Application, Reach, Supplied};
use crate::{CliError, load_policies};

/// Options of `riposte serve`.
#[derive(clap::Args, Default)]
pub struct ServeArgs {
    /// Policy file [default: $RIPOSTE_POLICY, else the embedded example policy].
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Directory of the embedded store [default: $RIPOSTE_STATE_DIR, else ./.riposte].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Port [default: $PORT, else 8080; 0 picks a free one].
    #[arg(long)]
    port: Option<u16>,
}

/// What a running server writes into its state directory so `riposte incident` can reach it
/// while the store file is locked.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServeInfo {
    /// Base URL of the server.
    pub url: String,
    /// Its process id.
    pub pid: u32,
}

/// Path of the [`ServeInfo`] file in `state_dir`.
pub fn info_path(state_dir: &Path) -> PathBuf {
    state_dir.join("serve.json")
}

/// Runs the server until SIGTERM or Ctrl-C; on AWS Lambda, serves the Runtime API's events instead.
pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let lookup = Lookup::process();
    let env = EnvConfig::from_lookup(lookup)?;
    let traces = crate::traces::Traces::from_env().map_err(CliError::Usage)?;
    crate::logging::init(env.json_logs, traces.as_ref());
    let (policies, origin) = load_policies(args.policy.as_deref().or(env.policy.as_deref()))?;
    let state_dir = args.state_dir.unwrap_or_else(default_state_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))?;
    let served = runtime.block_on(serve(env, lookup, policies, origin, state_dir, args.port));
    if let Some(t) = traces {
        t.shutdown();
    }
    served
}

async fn serve(
    env: EnvConfig,
    lookup: Lookup<'static>,
    policies: riposte_core::policy::PolicySet,
    origin: String,
    state_dir: PathBuf,
    port: Option<u16>,
) -> Result<(), CliError> {
    let Supplied { parts, store_note, executor_note } =
        Supplied::from_settings(&env, lookup, &policies, &state_dir).await?;

    let unauthenticated = env.credentials.unauthenticated();
    let host = if unauthenticated.is_empty() || env.platform.is_managed() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        let names: Vec<String> = unauthenticated.iter().map(|k| format!("/v1/{}", k.as_str())).collect();
        tracing::warn!(
            endpoints = %names.join(", "),
            "intake is unauthenticated on these endpoints: listening on 127.0.0.1 only (set RIPOSTE_FALCO_TOKEN, RIPOSTE_MONITORING_TOKEN and RIPOSTE_PUBSUB_TOKEN to listen on all interfaces)"
        );
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    // On Lambda requests arrive through the Runtime API: there is no port to listen on.
    let listener = match env.platform {
        Platform::Lambda => None,
        Platform::Local | Platform::CloudRun => {
            let wanted = SocketAddr::new(host, port.unwrap_or(env.port));
            let listener = tokio::net::TcpListener::bind(wanted)
                .await
                .map_err(|e| CliError::Runtime(format!("cannot listen on {wanted}: {e}")))?;
            let addr = listener.local_addr().map_err(|e| CliError::Runtime(e.to_string()))?;
            Some((listener, addr))
        }
    };
    let url = match &listener {
        None => crate::lambda::describe_runtime_api(),
        Some((_, addr)) => {
            format!("http://{}:{}", if host.is_loopback() { "127.0.0.1" } else { "0.0.0.0" }, addr.port())
        }
    };

    let public_url = match (&env.public_url, &listener) {
        (Some(u), _) => u.clone(),
        (None, Some((_, addr))) => format!("http://127.0.0.1:{}", addr.port()),
        // Configuration requires a public URL on Lambda; this is never reached.
        (None, None) => return Err(CliError::Usage(format!("{} is required on AWS Lambda", vars::PUBLIC_URL))),
    };
    let policy_count = policies.policies.len();
    let reach = Reach { public_url, loopback: host.is_loopback() };
    let Application { router, runner, metrics, .. } = Application::build(&env, policies, parts, reach)?;
    if let Some(port) = env.metrics_port {
        serve_metrics(port, metrics).await?;
    }
    tracing::info!(%url, policy = %origin, policies = policy_count, store = %store_note, executor = executor_note, "riposte is serving");
    println!(
        "riposte listening on {url}  (policy: {origin}, {policy_count} policies; store: {store_note}; executor: {executor_note})"
    );

    let Some((listener, addr)) = listener else {
        // No timer runs while Lambda has the environment frozen: the runtime sweeps between events.
        return crate::lambda::run(router, runner, env.sweep_interval).await;
    };
    // `riposte incident` reaches the server through this file while it holds the store's lock.
    let info_file = (env.store == StoreChoice::Embedded).then(|| info_path(&state_dir));
    if let Some(file) = &info_file {
        let info = ServeInfo { url: format!("http://127.0.0.1:{}", addr.port()), pid: std::process::id() };
        if let Err(e) = std::fs::write(file, serde_json::to_vec(&info).unwrap_or_default()) {
            tracing::warn!(error = %e, "cannot write {}; `riposte incident` will not reach this server", file.display());
        }
    }

    // Resume whatever a previous run left unfinished, then keep sweeping.
    let sweeper = runner.clone();
    let interval = env.sweep_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            match sweeper.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(steps = n, "sweep resumed unfinished steps"),
                Err(e) => tracing::error!(error = %e, "sweep failed"),
            }
        }
    });

    let signalled = Arc::new(std::sync::OnceLock::new());
    riposte_ingest::server::serve(listener, router, env.connections, shutdown_signal(signalled.clone()), DRAIN).await;
    if let Some(info_file) = info_file {
        let _ = std::fs::remove_file(info_file);
    }
    // Cloud Run allows 10 s between SIGTERM and SIGKILL, counted from the signal: let containment
    // under way finish a step rather than cut it (another instance's sweep resumes what is left).
    let since = signalled.get().copied().unwrap_or_else(tokio::time::Instant::now);
    let left = runner.settle(since + SHUTDOWN_GRACE).await;
    if left > 0 {
        tracing::warn!(tasks = left, "stopped with work under way; the sweep resumes it");
    }
    Ok(())
}

/// Serves `GET /metrics` on 127.0.0.1:`port` in the background: only a process in the same
/// instance (a Prometheus sidecar) reaches it, so it asks for no credential.
async fn serve_metrics(port: u16, metrics: riposte_core::metrics::Metrics) -> Result<(), CliError> {
    let wanted = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let listener = tokio::net::TcpListener::bind(wanted)
        .await
        .map_err(|e| CliError::Runtime(format!("cannot listen on {wanted} ({}): {e}", vars::METRICS_PORT)))?;
    tracing::info!(url = %format!("http://{wanted}/metrics"), "metrics for a sidecar");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, riposte_ingest::metrics_app(metrics)).await {
            tracing::error!(error = %e, "the metrics port stopped");
        }
    });
    Ok(())
}

/// How long after SIGTERM requests under way may take to be answered before their connections
/// are closed (within Cloud Run's 10 s, leaving time for the work they started).
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How long after SIGTERM a stopping server waits for the work under way (Cloud Run kills it at 10 s).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// Resolves at SIGTERM or Ctrl-C, noting when in `signalled`.
async fn shutdown_signal(signalled: Arc<std::sync::OnceLock<tokio::time::Instant>>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    let _ = signalled.set(tokio::time::Instant::now());
    tracing::info!("shutting down");
}
