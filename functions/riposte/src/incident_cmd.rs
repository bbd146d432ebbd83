//! `riposte incident list|show|release`: use the store directly, or ask the running server when it
//! holds the embedded store.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use riposte_cloud::firestore::FirestoreStore;
use riposte_core::incident::{Incident, StepStatus, is_incident_id};
use riposte_core::notify::printable;
use riposte_core::release::{ReleaseError, ReleaseOutcome, release};
use riposte_core::store::{EmbeddedStore, IncidentSummary, Store, StoreError, status_name};

use crate::CliError;
use crate::config::{ExecutorChoice, Lookup, StoreChoice};
use crate::config::{default_state_dir, vars};
use crate::serve::{ServeInfo, info_path};

/// `riposte incident …`.
#[derive(clap::Subcommand)]
pub enum IncidentCommand {
    /// The newest incidents.
    List {
        /// Directory of the embedded store [default: $RIPOSTE_STATE_DIR, else ./.riposte].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One incident: its alert, plan, requests, outcomes and journal.
    Show {
        /// Incident id.
        id: String,
        /// Directory of the embedded store [default: $RIPOSTE_STATE_DIR, else ./.riposte].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Print the stored JSON.
        #[arg(long)]
        json: bool,
    },
    /// Undo an incident's reversible steps, last first: uncordon the node (if this incident
    /// cordoned it), remove the labels riposte set, delete the isolating NetworkPolicy, remove
    /// the quarantine tag. Steps not yet run are skipped and the incident is closed. Snapshots,
    /// the shared firewall rules and destructive steps stay. Acts with RIPOSTE_EXECUTOR's
    /// executor and your credentials; while `serve` holds the embedded store, the server does it.
    Release {
        /// Incident id.
        id: String,
        /// Who releases, for the journal [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// Directory of the embedded store [default: $RIPOSTE_STATE_DIR, else ./.riposte].
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

/// Where incidents are read from.
enum Source {
    Store(Box<dyn Store>),
    Server(ServeInfo),
}

fn open(state_dir: &Path) -> Result<Source, CliError> {
    // With RIPOSTE_STORE=firestore, read Firestore directly (any number of readers may).
    let mut errors = Vec::new();
    let choice = StoreChoice::from_lookup(Lookup::process(), &mut errors);
    if !errors.is_empty() {
        return Err(CliError::Usage(errors.join("; ")));
    }
    if let StoreChoice::Firestore { project } = choice {
        let emulator = Lookup::process().get(vars::FIRESTORE_EMULATOR_HOST);
        let store =
            FirestoreStore::connect(&project, emulator.as_deref()).map_err(|e| CliError::Usage(e.to_string()))?;
        return Ok(Source::Store(Box::new(store)));
    }
    if !state_dir.join("riposte.redb").exists() {
        return Err(CliError::Usage(format!(
            "no store in {}: run `riposte serve` first, or pass --state-dir",
            state_dir.display()
        )));
    }
    match EmbeddedStore::open(state_dir) {
        Ok(s) => Ok(Source::Store(Box::new(s))),
        Err(StoreError::Locked(_)) => {
            let text = std::fs::read_to_string(info_path(state_dir)).map_err(|e| {
                CliError::Runtime(format!("the store is held by another process and its serve.json is unreadable: {e}"))
            })?;
            let info: ServeInfo =
                serde_json::from_str(&text).map_err(|e| CliError::Runtime(format!("serve.json is invalid: {e}")))?;
            Ok(Source::Server(info))
        }
        Err(e) => Err(CliError::Runtime(e.to_string())),
    }
}

async fn fetch<T: serde::de::DeserializeOwned>(info: &ServeInfo, path: &str) -> Result<Option<T>, CliError> {
    ask(info, reqwest::Client::new().get(format!("{}{path}", info.url))).await
}

async fn ask<T: serde::de::DeserializeOwned>(
    info: &ServeInfo,
    mut request: reqwest::RequestBuilder,
) -> Result<Option<T>, CliError> {
    if let Ok(token) = std::env::var(vars::ADMIN_TOKEN) {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        CliError::Runtime(format!("cannot reach the running server (pid {}) at {}: {e}", info.pid, info.url))
    })?;
    match response.status().as_u16() {
        200 => {
            response.json().await.map(Some).map_err(|e| CliError::Runtime(format!("bad answer from the server: {e}")))
        }
        404 => Ok(None),
        401 | 403 => Err(CliError::Usage(format!("the server refused the request: set {}", vars::ADMIN_TOKEN))),
        409 => {
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            Err(CliError::Runtime(answer["message"].as_str().unwrap_or("the server refused: conflict").to_string()))
        }
        s => Err(CliError::Runtime(format!("the server answered {s}"))),
    }
}

/// Runs an incident subcommand.
pub fn run(command: IncidentCommand) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    runtime.block_on(async {
        match command {
            IncidentCommand::List { state_dir, limit } => {
                let list: Vec<IncidentSummary> = match open(&state_dir.unwrap_or_else(default_state_dir))? {
                    Source::Store(s) => s.list(limit).await.map_err(|e| CliError::Runtime(e.to_string()))?,
                    Source::Server(info) => {
                        fetch(&info, &format!("/v1/incidents?limit={limit}")).await?.unwrap_or_default()
                    }
                };
                if list.is_empty() {
                    println!("no incidents");
                }
                for i in list {
                    println!(
                        "{}  {:<28} {:<17} alerts={:<5} {:?}  [{}]",
                        i.id, i.policy, i.state, i.alert_count, i.rule, i.steps
                    );
                }
                Ok(())
            }
            IncidentCommand::Release { id, by, state_dir } => {
                let id = url_segment(&id)?.to_string();
                let by = by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "riposte incident release".into());
                let outcome: ReleaseOutcome = match open(&state_dir.unwrap_or_else(default_state_dir))? {
                    Source::Store(s) => {
                        let mut errors = Vec::new();
                        let choice = ExecutorChoice::from_lookup(Lookup::process(), &mut errors);
                        if !errors.is_empty() {
                            return Err(CliError::Usage(errors.join("; ")));
                        }
                        let built = crate::executor::build(&choice).await?;
                        release(s.as_ref(), &built.executor, &id, &by, jiff::Timestamp::now()).await.map_err(|e| {
                            match e {
                                ReleaseError::NotFound(_) => CliError::Usage(e.to_string()),
                                other => CliError::Runtime(other.to_string()),
                            }
                        })?
                    }
                    Source::Server(info) => {
                        let request = reqwest::Client::new()
                            .post(format!("{}/v1/incidents/{id}/release", info.url))
                            .json(&serde_json::json!({ "by": by }));
                        ask(&info, request).await?.ok_or_else(|| CliError::Usage(format!("no incident {id}")))?
                    }
                };
                for (index, action, message) in &outcome.undone {
                    println!("[{index}] {action}: {message}");
                }
                for (index, action, error) in &outcome.failed {
                    println!("[{index}] {action}: NOT undone: {error}");
                }
                if outcome.undone.is_empty() && outcome.failed.is_empty() {
                    println!("incident {id}: nothing left to undo");
                }
                if outcome.failed.is_empty() {
                    println!("incident {id} released");
                    Ok(())
                } else {
                    Err(CliError::Runtime(format!(
                        "{} step(s) could not be undone; run the release again to retry them",
                        outcome.failed.len()
                    )))
                }
            }
            IncidentCommand::Show { id, state_dir, json } => {
                let incident: Option<Incident> = match open(&state_dir.unwrap_or_else(default_state_dir))? {
                    Source::Store(s) => s.get(&id).await.map_err(|e| CliError::Runtime(e.to_string()))?,
                    Source::Server(info) => fetch(&info, &format!("/v1/incidents/{}", url_segment(&id)?)).await?,
                };
                let incident = incident.ok_or_else(|| CliError::Usage(format!("no incident {id}")))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&incident).unwrap_or_default());
                } else {
                    print!("{}", describe_incident(&incident, true));
                }
                Ok(())
            }
        }
    })
}

/// An incident id checked before it goes into a URL path.
fn url_segment(id: &str) -> Result<&str, CliError> {
    if is_incident_id(id) { Ok(id) } else { Err(CliError::Usage(format!("{id:?} is not an incident id"))) }
}

/// A readable report of an incident; `requests` adds every step's requests.
pub fn describe_incident(i: &Incident, requests: bool) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "incident {}  policy {:?}{}", i.id, i.policy, if i.dry_run { "  [dry-run policy]" } else { "" });
    let _ = writeln!(
        out,
        "  alerts: {} (first {}, last {}){}",
        i.tally.alert_count,
        i.created_at,
        i.tally.last_seen,
        i.tally.resolved_at.map(|r| format!(", resolved at {r}")).unwrap_or_default()
    );
    let _ = writeln!(out, "  alert: {} {} {:?}", i.alert.source, i.alert.severity, i.alert.rule);
    let _ = writeln!(out, "  summary: {}", printable(&i.alert.summary.chars().take(300).collect::<String>()));
    let key: Vec<String> = i.key_parts.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(out, "  grouped by: {}", key.join(" "));
    let _ = writeln!(out, "  steps:");
    for s in &i.steps {
        let status = match &s.status {
            StepStatus::Skipped { reason } => format!("skipped: {reason}"),
            StepStatus::Failed { error } => format!("failed: {error}"),
            other => status_name(other).replace('_', " "),
        };
        let class = if s.gated { "on approval" } else { "automatic" };
        let target = s.target.as_ref().map(|t| t.describe()).unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "    [{}] {} ({class}) -> {target}: {status}", s.index, s.action.name());
        if let Some(r) = &s.report {
            let _ = writeln!(out, "        {}", r.message);
        }
        if let Some(r) = &s.released {
            let _ = writeln!(out, "        released {} by {}: {}", r.at, r.by, r.report.message);
        }
        if requests {
            for r in &s.requests {
                let _ = writeln!(out, "        {} {}", r.method, r.url);
                if let Some(note) = &r.note {
                    let _ = writeln!(out, "          ({note})");
                }
                if let Some(ct) = &r.content_type {
                    let _ = writeln!(out, "          Content-Type: {ct}");
                }
                if let Some(body) = &r.body {
                    let _ = writeln!(out, "          {body}");
                }
            }
        }
    }
    if let Some(a) = &i.approval {
        let approvals = a.decisions.iter().filter(|d| d.approve).count();
        let _ = writeln!(
            out,
            "  approval: {:?}, {approvals}/{} approval(s), expires {}, plan hash {}",
            a.state,
            a.required,
            a.expires_at,
            a.plan_hash.get(..16).unwrap_or(&a.plan_hash)
        );
        for d in &a.decisions {
            let _ = writeln!(out, "    {} by {} at {}", if d.approve { "approved" } else { "rejected" }, d.by, d.at);
        }
    }
    if let Some(reason) = &i.limit_reached {
        let _ = writeln!(out, "  {reason}: the containment steps waited for approval");
    }
    if !i.journal.is_empty() {
        let _ = writeln!(out, "  journal:");
        for j in &i.journal {
            let _ = writeln!(out, "    {}  {}", j.at, j.message);
        }
    }
    out
}
