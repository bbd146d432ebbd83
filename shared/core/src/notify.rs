//! Notifications about incidents. The console notifier is the local default; chat notifiers live
//! in `riposte-cloud`. A failing notifier is logged and never blocks containment.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;

use crate::approval::ApprovalLink;
use crate::incident::{Incident, StepStatus};
use crate::metrics::Metrics;
use crate::store::status_name;

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new incident with its plan (and approval request, if any).
    Opened,
    /// An approver decided (approved, rejected, or one of several approvals recorded).
    Decided,
    /// A run of steps finished.
    StepsFinished,
}

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error)]
#[error("notifier {name} failed: {reason}")]
pub struct NotifyError {
    /// Notifier name.
    pub name: String,
    /// What went wrong (never contains the webhook URL).
    pub reason: String,
}

/// A notification target.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `event` about `incident`, with the approval links (one per approver slot) when the
    /// event asks for a decision.
    async fn notify(&self, event: Event, incident: &Incident, links: &Links) -> Result<(), NotifyError>;
}

/// The links a message carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// One per approver slot, when the message asks for a decision.
    pub approvals: Vec<ApprovalLink>,
    /// The incident's page in the console, when the console is served.
    pub console: Option<String>,
}

impl Links {
    /// Approval links only.
    pub fn approvals(approvals: Vec<ApprovalLink>) -> Links {
        Links { approvals, console: None }
    }
}

/// Prints a readable summary to standard output. Approval links are printed only when
/// `show_links` is set: on Cloud Run standard output is Cloud Logging, readable by many.
#[derive(Debug, Default)]
pub struct ConsoleNotifier {
    /// Print the approval links (the local default).
    pub show_links: bool,
}

/// `s` with control characters (newlines, ANSI escapes) shown as escapes, so alert text an
/// attacker controls cannot forge lines on a terminal or in a log.
pub fn printable(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// The text the console notifier prints.
pub fn render_text(event: Event, i: &Incident, links: &Links) -> String {
    let mut out = String::new();
    let a = &i.alert;
    let head = match event {
        Event::Opened => "opened",
        Event::Decided => "decision",
        Event::StepsFinished => "progress",
    };
    let _ = writeln!(
        out,
        "== riposte incident {} {head} (policy {:?}){}",
        i.id,
        i.policy,
        if i.dry_run { " [dry run]" } else { "" }
    );
    if event == Event::Opened {
        let _ = writeln!(
            out,
            "   {} {} alert {:?}: {}",
            a.source,
            a.severity,
            a.rule,
            printable(&a.summary.chars().take(160).collect::<String>())
        );
    }
    for s in &i.steps {
        let target = s.target.as_ref().map(|t| t.describe()).unwrap_or_else(|| "-".into());
        let status = match &s.status {
            StepStatus::Skipped { reason } => format!("skipped: {reason}"),
            StepStatus::Failed { error } => format!("failed: {error}"),
            other => status_name(other).replace('_', " "),
        };
        let _ = writeln!(out, "   [{}] {} -> {target}: {status}", s.index, s.action.name());
        // The hash of each evidence object, where responders read: the chain of custody starts here.
        for e in s.report.iter().flat_map(|r| &r.evidence) {
            let _ = writeln!(out, "       {}", printable(&e.journal_line()));
        }
    }
    if let Some(reason) = &i.limit_reached {
        let _ = writeln!(out, "   {reason}: the containment steps wait for approval");
    }
    if let Some(ap) = &i.approval {
        let approvals = ap.decisions.iter().filter(|d| d.approve).count();
        let _ = writeln!(
            out,
            "   approval {:?}: {approvals}/{} approvals, expires {}",
            ap.state, ap.required, ap.expires_at
        );
    }
    for link in &links.approvals {
        let _ = writeln!(out, "   approve or reject ({}): {}", link.slot, link.url);
    }
    match &links.console {
        Some(url) => {
            let _ = writeln!(out, "   details: {url}");
        }
        None => {
            let _ = writeln!(out, "   details: riposte incident show {}", i.id);
        }
    }
    out
}

#[async_trait]
impl Notifier for ConsoleNotifier {
    async fn notify(&self, event: Event, incident: &Incident, links: &Links) -> Result<(), NotifyError> {
        let hidden = Links { approvals: Vec::new(), console: links.console.clone() };
        let text = render_text(event, incident, if self.show_links { links } else { &hidden });
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|_| stdout.flush())
            .map_err(|e| NotifyError { name: "console".into(), reason: e.to_string() })
    }
}

/// The configured notifiers, by name.
#[derive(Clone, Default)]
pub struct Notifiers {
    by_name: BTreeMap<String, Arc<dyn Notifier>>,
    /// The console's base URL (`https://…/console`), when it is served.
    console: Option<String>,
}

impl Notifiers {
    /// Notifiers by name (built by `riposte_cloud::notify::build` from the policy file).
    pub fn new(by_name: BTreeMap<String, Arc<dyn Notifier>>) -> Notifiers {
        Notifiers { by_name, console: None }
    }

    /// Puts a link to the incident's page under `console` (the console's base URL) in every message.
    pub fn with_console(mut self, console: Option<String>) -> Notifiers {
        self.console = console;
        self
    }

    /// No notifiers at all (replay, tests).
    pub fn none() -> Notifiers {
        Notifiers::default()
    }

    /// Sends `event` to every notifier the incident names; failures are logged and counted in
    /// `metrics`, never returned. Targets are sent to concurrently: one slow webhook does not hold
    /// back the others.
    pub async fn send(&self, event: Event, incident: &Incident, approvals: &[ApprovalLink], metrics: &Metrics) {
        let links = Links {
            approvals: approvals.to_vec(),
            // An id is letters, digits and dashes: it goes into a path as it is.
            console: self.console.as_ref().map(|base| format!("{base}/incidents/{}", incident.id)),
        };
        let mut set = tokio::task::JoinSet::new();
        for name in &incident.notify {
            if let Some(n) = self.by_name.get(name).cloned() {
                let (incident, links, metrics, name) = (incident.clone(), links.clone(), metrics.clone(), name.clone());
                set.spawn(async move {
                    let delivered = n.notify(event, &incident, &links).await;
                    metrics.notification(&name, delivered.is_ok());
                    if let Err(e) = delivered {
                        tracing::warn!(incident = %incident.id, error = %e, "notification failed");
                    }
                });
            }
        }
        while set.join_next().await.is_some() {}
    }
}
