//! A generic JSON webhook: riposte's own document, stable for automation.

use riposte_core::incident::Incident;
use riposte_core::intake::StepView;
use riposte_core::notify::{Event, Links};
use serde_json::{Value, json};

/// The webhook document for `event`.
pub fn payload(event: Event, incident: &Incident, links: &Links) -> Value {
    let a = &incident.alert;
    json!({
        "event": match event { Event::Opened => "opened", Event::Decided => "decided", Event::StepsFinished => "steps_finished" },
        "incident": {
            "id": incident.id,
            "policy": incident.policy,
            "alert_count": incident.tally.alert_count,
            "created_at": incident.created_at,
            "alert": {"source": a.source, "severity": a.severity, "rule": a.rule, "summary": a.summary, "resource": a.resource},
            "steps": StepView::of(incident),
            "limit_reached": incident.limit_reached,
            "approval": incident.approval.as_ref().map(|ap| json!({
                "state": ap.state, "required": ap.required, "expires_at": ap.expires_at,
                "decisions": ap.decisions,
            })),
        },
        "links": links.approvals,
        "console_url": links.console,
    })
}
