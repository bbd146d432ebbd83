//! The incident console: what came in, what was contained, what waits for whom. Server-rendered
//! like the approval page (no script, every stored string escaped: alert text is
//! attacker-controlled), read-only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use riposte_core::incident::{ApprovalState, Incident, IncidentState, Step, StepStatus};
use riposte_core::requests::PlannedRequest;
use riposte_core::store::{AlertRecord, IncidentSummary, status_name};
use serde::Deserialize;

use crate::page::{document, escape};

/// How many of the newest incidents the list filters.
pub const LISTED: usize = 500;

/// How many of the newest intake-log lines an incident's page reads for its alerts' sources.
pub const LOG_LINES: usize = 1000;

/// The list's filter, from its form (`?state=&policy=&cluster=`; empty means any).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    cluster: String,
}

impl Filter {
    /// Refuses a state that is not one of [`IncidentState::ALL`].
    pub fn validate(&self) -> Result<(), String> {
        let known = IncidentState::ALL.map(IncidentState::as_str);
        if !self.state.is_empty() && !known.contains(&self.state.as_str()) {
            return Err(format!("state must be one of {}", known.join(", ")));
        }
        Ok(())
    }

    fn keeps(&self, i: &IncidentSummary) -> bool {
        (self.state.is_empty() || i.state == self.state)
            && (self.policy.is_empty() || i.policy == self.policy)
            && (self.cluster.is_empty() || i.cluster.as_deref() == Some(self.cluster.as_str()))
    }
}

/// The list of the newest incidents that `filter` keeps.
pub fn list_page(newest: &[IncidentSummary], filter: &Filter) -> String {
    let mut b = String::from("<h1>Incidents</h1>");
    let _ = write!(b, "<form method=\"get\" action=\"/console\" class=\"filter\"><label>State <select name=\"state\">");
    let _ = write!(b, "<option value=\"\">any</option>");
    for state in IncidentState::ALL.map(IncidentState::as_str) {
        let selected = if filter.state == state { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{state}\"{selected}>{}</option>", state.replace('_', " "));
    }
    let _ = write!(
        b,
        "</select></label> <label>Policy <input name=\"policy\" value=\"{}\"></label> \
<label>Cluster <input name=\"cluster\" value=\"{}\"></label> <button type=\"submit\">Filter</button></form>",
        escape(&filter.policy),
        escape(&filter.cluster)
    );
    let kept: Vec<&IncidentSummary> = newest.iter().filter(|i| filter.keeps(i)).collect();
    let _ = write!(
        b,
        "<p class=\"muted\" id=\"shown\">{} of the newest {} incidents.</p>",
        kept.len(),
        newest.len().min(LISTED)
    );
    let _ = write!(
        b,
        "<table id=\"incidents\"><thead><tr><th>Opened</th><th>Incident</th><th>Policy</th><th>Rule</th>\
<th>Cluster</th><th>Alerts</th><th>State</th><th>Steps</th></tr></thead><tbody>"
    );
    for i in kept {
        let _ = write!(
            b,
            "<tr class=\"incident\"><td>{}</td><td><a href=\"/console/incidents/{}\">{}</a></td><td>{}</td><td>{}</td>\
<td>{}</td><td>{}</td><td><span class=\"state {}\">{}</span></td><td>{}</td></tr>",
            escape(&short_time(&i.created_at.to_string())),
            // An id is letters, digits and dashes (checked when stored and when read).
            escape(&i.id),
            escape(&i.id),
            escape(&i.policy),
            escape(&i.rule),
            escape(i.cluster.as_deref().unwrap_or("-")),
            i.alert_count,
            escape(&i.state),
            escape(&i.state.replace('_', " ")),
            escape(&i.steps)
        );
    }
    let _ = write!(b, "</tbody></table>");
    document("riposte incidents", &format!("<div class=\"console\">{b}</div>"), false)
}

/// One incident's timeline: its alerts, each step with the exact requests sent or planned, the
/// approval and its decisions, releases and the journal. `log` is the newest intake-log lines.
pub fn incident_page(incident: &Incident, log: &[AlertRecord]) -> String {
    let mut b = String::new();
    let a = &incident.alert;
    let state = incident.state().as_str();
    let _ = write!(
        b,
        "<p><a href=\"/console\">All incidents</a></p><h1>Incident {}</h1>\
<p><span class=\"state {state}\" id=\"incident-state\">{}</span>{}</p>",
        escape(&incident.id),
        state.replace('_', " "),
        if incident.dry_run { " · dry run: nothing was sent" } else { "" }
    );
    if let Some(reason) = &incident.limit_reached {
        let _ = write!(b, "<p id=\"limit-reached\"><strong>{}</strong></p>", escape(reason));
    }

    // Alerts: the first in full, the rest as the tally and the intake log's lines.
    let mut by_source: BTreeMap<String, u64> = BTreeMap::new();
    let suffix = format!(" {}", incident.id);
    for line in log.iter().filter(|l| l.outcome.ends_with(&suffix)) {
        *by_source.entry(line.source.to_string()).or_default() += line.count;
    }
    let sources = if by_source.is_empty() {
        a.source.to_string()
    } else {
        by_source.iter().map(|(s, n)| format!("{s}: {n}")).collect::<Vec<_>>().join(", ")
    };
    let _ = write!(b, "<h2>Alerts</h2><table id=\"alerts\"><tbody>");
    for (k, v) in [
        ("Policy", incident.policy.clone()),
        ("Rule", a.rule.clone()),
        ("Severity", a.severity.to_string()),
        ("Alerts", incident.tally.alert_count.to_string()),
        ("First", incident.created_at.to_string()),
        ("Last", incident.tally.last_seen.to_string()),
        ("Sources", sources),
        ("Closed", incident.tally.resolved_at.map_or_else(|| "open to new alerts".into(), |t| t.to_string())),
    ] {
        let _ = write!(b, "<tr><th scope=\"row\">{k}</th><td>{}</td></tr>", escape(&v));
    }
    let _ = write!(
        b,
        "</tbody></table><pre id=\"summary\">{}</pre>",
        escape(&a.summary.chars().take(2000).collect::<String>())
    );

    let _ = write!(b, "<h2>Steps</h2>");
    for step in &incident.steps {
        step_section(&mut b, step);
    }

    if let Some(approval) = &incident.approval {
        let state = match approval.state {
            ApprovalState::Pending => "waiting",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Expired => "expired",
        };
        let approvers = if approval.approvers.is_empty() {
            "anyone with a link".to_string()
        } else {
            approval.approvers.join(", ")
        };
        let _ = write!(
            b,
            "<h2>Approval</h2><p id=\"approval\">{state} · {} required · approvers: {} · expires {}</p>\
<table id=\"decisions\"><thead><tr><th>Who</th><th>Decision</th><th>When</th></tr></thead><tbody>",
            approval.required,
            escape(&approvers),
            escape(&approval.expires_at.to_string())
        );
        for d in &approval.decisions {
            let _ = write!(
                b,
                "<tr class=\"decision\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&d.by),
                if d.approve { "approved" } else { "rejected" },
                escape(&d.at.to_string())
            );
        }
        let _ = write!(b, "</tbody></table>");
    }

    let _ = write!(b, "<h2>Journal</h2><table id=\"journal\"><tbody>");
    for e in &incident.journal {
        let _ = write!(
            b,
            "<tr><td class=\"when\">{}</td><td>{}</td></tr>",
            escape(&short_time(&e.at.to_string())),
            escape(&e.message)
        );
    }
    let _ = write!(b, "</tbody></table>");
    document(
        &format!("riposte incident {}", incident.id),
        &format!("<div class=\"console\">{b}</div>"),
        state == "running",
    )
}

fn step_section(b: &mut String, step: &Step) {
    let status = match &step.status {
        StepStatus::Skipped { reason } => format!("skipped: {reason}"),
        StepStatus::Failed { error } => format!("failed: {error}"),
        other => status_name(other).replace('_', " "),
    };
    let target = step.target.as_ref().map_or_else(|| "-".into(), |t| t.describe());
    let _ = write!(
        b,
        "<section class=\"console-step\" id=\"step-{}\"><h3>{}. {} <span class=\"muted\">{}</span></h3>\
<table><tbody><tr><th scope=\"row\">Target</th><td>{}</td></tr><tr><th scope=\"row\">Status</th><td class=\"step-status\">{}</td></tr>\
<tr><th scope=\"row\">Attempts</th><td>{}</td></tr>",
        step.index,
        step.index + 1,
        escape(step.action.name()),
        if step.gated { "after approval" } else { "automatic" },
        escape(&target),
        escape(&status),
        step.attempts
    );
    if let Some(report) = &step.report {
        let _ = write!(b, "<tr><th scope=\"row\">Result</th><td>{}</td></tr>", escape(&report.message));
        for e in &report.evidence {
            let _ = write!(b, "<tr><th scope=\"row\">Evidence</th><td>{}</td></tr>", escape(&e.journal_line()));
        }
    }
    if let Some(r) = &step.released {
        let _ = write!(
            b,
            "<tr><th scope=\"row\">Released</th><td>by {} at {}: {}</td></tr>",
            escape(&r.by),
            escape(&r.at.to_string()),
            escape(&r.report.message)
        );
    }
    let _ = write!(b, "</tbody></table>");
    // What was sent when the step ran (or, in a dry run, what would have been); else the plan.
    let (heading, requests) = match &step.report {
        Some(r) if r.dry_run => ("Requests it would send (dry run)", &r.requests),
        Some(r) => ("Requests sent", &r.requests),
        None => ("Requests planned", &step.requests),
    };
    if !requests.is_empty() {
        let _ = write!(b, "<details><summary>{heading} ({})</summary>", requests.len());
        for r in requests {
            request_block(b, r);
        }
        let _ = write!(b, "</details>");
    }
    let _ = write!(b, "</section>");
}

fn request_block(b: &mut String, r: &PlannedRequest) {
    let mut text = format!("{} {}", r.method, r.url);
    if let Some(t) = &r.content_type {
        let _ = write!(text, "\ncontent-type: {t}");
    }
    if let Some(body) = &r.body {
        text.push('\n');
        text.push_str(&serde_json::to_string_pretty(body).unwrap_or_default());
    }
    if let Some(note) = &r.note {
        let _ = write!(text, "\n({note})");
    }
    let _ = write!(b, "<pre class=\"request\">{}</pre>", escape(&text));
}

/// `2026-12-06T01:02:03.456789Z` → `2026-12-06 01:02:03Z`: a list is read at a glance.
fn short_time(t: &str) -> String {
    match t.split_once('.') {
        Some((head, _)) => format!("{}Z", head.replace('T', " ")),
        None => t.replace('T', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_state_is_refused_naming_the_known_ones() {
        let bad = Filter { state: "<x>".into(), ..Filter::default() };
        let error = bad.validate().expect_err("unknown state");
        assert!(error.contains("awaiting_approval") && error.contains("released"), "{error}");
        assert!(Filter { state: "failed".into(), ..Filter::default() }.validate().is_ok());
        assert_eq!(short_time("2026-12-06T01:02:03.456789Z"), "2026-12-06 01:02:03Z");
    }
}
