//! Chat notifiers. Webhook URLs are secrets: read from the environment, never logged (errors are
//! stripped of the URL). Deliveries are retried on 429/5xx/network errors within a small budget
//! and never block containment: callers spawn them, failures are logged.

mod google_chat;
mod slack;
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use riposte_core::incident::{Incident, StepStatus};
use riposte_core::notify::{ConsoleNotifier, Event, Links, Notifier, Notifiers, NotifyError};
use riposte_core::policy::NotifierConfig;
use riposte_core::store::status_name;
use serde_json::Value;

pub use google_chat::message as google_chat_message;
pub use slack::message as slack_message;
pub use webhook::payload as webhook_payload;

/// Which chat format a webhook speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    /// Slack incoming webhook, Block Kit.
    Slack,
    /// Google Chat incoming webhook, cardsV2.
    GoogleChat,
    /// riposte's own JSON document.
    Webhook,
}

/// A notifier that POSTs JSON to a webhook URL.
pub struct WebhookNotifier {
    name: String,
    format: ChatFormat,
    url: String,
    client: reqwest::Client,
    attempts: u32,
    backoff: Duration,
}

impl WebhookNotifier {
    /// A notifier for `url` (a secret) in `format`; `name` appears in logs instead of the URL.
    pub fn new(name: &str, format: ChatFormat, url: String) -> WebhookNotifier {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        WebhookNotifier { name: name.into(), format, url, client, attempts: 4, backoff: Duration::from_millis(250) }
    }

    /// Sets the retry budget (attempts in all, first backoff; it doubles each time).
    pub fn with_retries(mut self, attempts: u32, backoff: Duration) -> WebhookNotifier {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    fn body(&self, event: Event, incident: &Incident, links: &Links) -> Value {
        match self.format {
            ChatFormat::Slack => slack::message(event, incident, links),
            ChatFormat::GoogleChat => google_chat::message(event, incident, links),
            ChatFormat::Webhook => webhook::payload(event, incident, links),
        }
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn notify(&self, event: Event, incident: &Incident, links: &Links) -> Result<(), NotifyError> {
        let body = self.body(event, incident, links);
        let fail = |reason: String| NotifyError { name: self.name.clone(), reason };
        let mut delay = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.client.post(&self.url).json(&body).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                    last = format!("HTTP {}", r.status().as_u16());
                    let retry_after = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(5)));
                    if attempt < self.attempts {
                        tokio::time::sleep(retry_after.unwrap_or(delay)).await;
                    }
                }
                Ok(r) => return Err(fail(format!("HTTP {}: the webhook refused the message", r.status().as_u16()))),
                Err(e) => {
                    // reqwest errors carry the URL, which is a secret.
                    last = e.without_url().to_string();
                    if attempt < self.attempts {
                        tokio::time::sleep(delay).await;
                    }
                }
            }
            delay *= 2;
        }
        Err(fail(format!("gave up after {} attempts: {last}", self.attempts)))
    }
}

/// Whether `url` may carry a secret webhook: https, or plain http to this machine only.
pub fn is_acceptable_url(url: &str) -> bool {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.scheme(), u.host_str()) {
            ("https", Some(_)) => true,
            ("http", Some(host)) => matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
            _ => false,
        },
        Err(_) => false,
    }
}

/// Builds every configured notifier, reading webhook URLs from the environment through `env`.
/// Every missing or invalid URL is reported at once. `show_links`: whether the console prints
/// approval links (not on Cloud Run, where standard output is Cloud Logging).
pub fn build(
    config: &BTreeMap<String, NotifierConfig>,
    env: impl Fn(&str) -> Option<String>,
    show_links: bool,
) -> Result<Notifiers, Vec<String>> {
    let mut out: BTreeMap<String, Arc<dyn Notifier>> = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, c) in config {
        let (format, url_env) = match c {
            NotifierConfig::Console {} => {
                out.insert(name.clone(), Arc::new(ConsoleNotifier { show_links }));
                continue;
            }
            NotifierConfig::Slack { url_env } => (ChatFormat::Slack, url_env),
            NotifierConfig::GoogleChat { url_env } => (ChatFormat::GoogleChat, url_env),
            NotifierConfig::Webhook { url_env } => (ChatFormat::Webhook, url_env),
        };
        match env(url_env).filter(|u| !u.is_empty()) {
            None => errors.push(format!("notifier {name}: set {url_env} to the webhook URL")),
            Some(url) if !is_acceptable_url(&url) => {
                errors.push(format!("notifier {name}: {url_env} must be an https URL"));
            }
            Some(url) => {
                out.insert(name.clone(), Arc::new(WebhookNotifier::new(name, format, url)));
            }
        }
    }
    if errors.is_empty() { Ok(Notifiers::new(out)) } else { Err(errors) }
}

/// One line per step: `action -> target: status`.
fn step_lines(incident: &Incident, gated: bool) -> Vec<String> {
    incident
        .steps
        .iter()
        .filter(|s| s.gated == gated)
        .map(|s| {
            let target = s.target.as_ref().map(|t| t.describe()).unwrap_or_else(|| "-".into());
            let status = match &s.status {
                StepStatus::Skipped { reason } => format!("skipped ({reason})"),
                StepStatus::Failed { error } => format!("FAILED ({error})"),
                other => status_name(other).replace('_', " "),
            };
            format!("{} → {target}: {status}", s.action.name())
        })
        .collect()
}

/// The headline of a message.
fn headline(event: Event, incident: &Incident) -> String {
    let a = &incident.alert;
    let what = match event {
        Event::Opened if incident.approval.is_some() => "opened, approval requested",
        Event::Opened => "opened",
        Event::Decided => "decision recorded",
        Event::StepsFinished => "progress",
    };
    format!("riposte incident {} {what}: {} {} — {}", incident.id, a.source, a.severity, a.rule)
}

/// What a gated step list is headed with: destructive steps, and containment a limit held back.
fn gated_header(incident: &Incident) -> &'static str {
    if incident.limit_reached.is_some() { "Waiting for approval" } else { "Destructive steps (need approval)" }
}

/// Why containment waits, when a blast-radius limit was reached.
fn limit_line(incident: &Incident) -> Option<String> {
    incident.limit_reached.as_ref().map(|r| format!("{r}: the containment steps wait for approval"))
}

/// The approval status line (state, approvals, who decided), when there is an approval.
fn approval_line(incident: &Incident) -> Option<String> {
    let ap = incident.approval.as_ref()?;
    let approvals = ap.decisions.iter().filter(|d| d.approve).count();
    let by: Vec<String> = ap
        .decisions
        .iter()
        .map(|d| format!("{} by {}", if d.approve { "approved" } else { "rejected" }, d.by))
        .collect();
    Some(format!(
        "Approval: {:?}, {approvals}/{} — expires {}{}",
        ap.state,
        ap.required,
        ap.expires_at,
        if by.is_empty() { String::new() } else { format!(" — {}", by.join(", ")) }
    ))
}

/// Truncates to `max` characters, marking the cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}
