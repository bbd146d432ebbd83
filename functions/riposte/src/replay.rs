//! `riposte replay`: parse a saved payload, show each policy's verdict with its reasons, and the
//! dry-run plan of the policies that take it. No server, no store, nothing sent.

use std::fmt::Write as _;
use std::path::PathBuf;

use http::HeaderMap;
use riposte_core::alert::{Alert, AlertStatus};
use riposte_core::plan::plan_incident;
use riposte_core::policy::PolicySet;
use riposte_core::sources::SourceKind;
use serde_json::json;

use crate::config::vars;
use crate::incident_cmd::describe_incident;
use crate::{CliError, load_policies};

/// Options of `riposte replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// A saved payload: a Falco alert, a Monitoring notification, a Pub/Sub push body or a LogEntry.
    file: PathBuf,
    /// Policy file [default: $RIPOSTE_POLICY, else the embedded example policy].
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The payload's format (falco, monitoring, pubsub) [default: detected].
    #[arg(long)]
    source: Option<SourceKind>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the replay and prints the report.
pub fn run(args: ReplayArgs) -> Result<(), CliError> {
    let policy_path = args.policy.or_else(|| std::env::var_os(vars::POLICY).map(PathBuf::from));
    let (policies, origin) = load_policies(policy_path.as_deref())?;
    let body =
        std::fs::read(&args.file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.file.display())))?;
    let kind = match args.source {
        Some(k) => k,
        None => SourceKind::detect(&body).map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?,
    };
    let mut alerts = kind
        .parse(&body, &HeaderMap::new())
        .map_err(|e| CliError::Usage(format!("{} as {}: {e}", args.file.display(), kind.as_str())))?;
    policies.apply_defaults(&mut alerts);
    let out = if args.json { report_json(&policies, &alerts) } else { report_text(&policies, &origin, kind, &alerts) };
    print!("{out}");
    Ok(())
}

fn report_json(policies: &PolicySet, alerts: &[Alert]) -> String {
    let now = jiff::Timestamp::now();
    let items: Vec<_> = alerts
        .iter()
        .map(|alert| {
            let verdicts: Vec<_> = policies
                .explain(alert)
                .into_iter()
                .map(|(p, r)| match r {
                    Ok(reasons) => json!({"policy": p.name, "matches": true, "reasons": reasons}),
                    Err(reason) => json!({"policy": p.name, "matches": false, "reasons": [reason]}),
                })
                .collect();
            let matched = policies.matches(alert);
            let plans: Vec<_> = matched
                .iter()
                .filter(|_| alert.status == AlertStatus::Firing)
                .map(|m| plan_incident(m, &policies.defaults, alert, now))
                .collect();
            let names: Vec<&str> = matched.iter().map(|m| m.name.as_str()).collect();
            json!({"alert": alert, "policies": verdicts, "matched": names, "plans": plans})
        })
        .collect();
    format!("{}\n", serde_json::to_string_pretty(&items).unwrap_or_default())
}

fn report_text(policies: &PolicySet, origin: &str, kind: SourceKind, alerts: &[Alert]) -> String {
    let mut out = String::new();
    let now = jiff::Timestamp::now();
    let _ = writeln!(out, "payload: {} ({} alert(s)); policy: {origin}", kind.as_str(), alerts.len());
    for alert in alerts {
        let _ = writeln!(
            out,
            "\nalert: {} {} {:?} at {} ({:?})",
            alert.source, alert.severity, alert.rule, alert.time, alert.status
        );
        let hints = riposte_core::alert::ResourceHints::NAMES
            .iter()
            .filter_map(|n| alert.resource.get(n).map(|v| format!("{n}={v}")))
            .collect::<Vec<_>>();
        let _ = writeln!(out, "  resource: {}", if hints.is_empty() { "(none)".into() } else { hints.join(" ") });
        if !alert.tags.is_empty() {
            let _ = writeln!(out, "  tags: {}", alert.tags.join(", "));
        }
        for note in &alert.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        let matched = policies.matches(alert);
        let _ = writeln!(out, "policies:");
        for (policy, verdict) in policies.explain(alert) {
            let taken = matched.iter().any(|m| m.name == policy.name);
            match verdict {
                Ok(reasons) if taken => {
                    let _ = writeln!(out, "  MATCH    {}: {}", policy.name, reasons.join("; "));
                }
                Ok(_) => {
                    let _ =
                        writeln!(out, "  shadowed {}: would match, but an earlier policy took the alert", policy.name);
                }
                Err(reason) => {
                    let _ = writeln!(out, "  no       {}: {reason}", policy.name);
                }
            }
        }
        if matched.is_empty() {
            let _ = writeln!(out, "no policy matched: the alert would be recorded and nothing done");
        }
        if alert.status == AlertStatus::Resolved && !matched.is_empty() {
            let _ =
                writeln!(out, "\nthe alert is resolved: it would be recorded on the open incident and start nothing");
            continue;
        }
        for m in matched {
            let incident = plan_incident(m, &policies.defaults, alert, now);
            let _ = writeln!(out, "\nplan under {:?} (dry run: these requests would be sent):", m.name);
            out.push_str(&describe_incident(&incident, true));
        }
    }
    out
}
