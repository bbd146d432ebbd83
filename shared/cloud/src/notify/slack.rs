//! Slack incoming webhook: Block Kit (header, sections, link buttons, context), within Slack's
//! limits (header 150 characters, section text 3000, at most 25 buttons, URLs ≤ 3000).

use riposte_core::incident::Incident;
use riposte_core::notify::{Event, Links};
use serde_json::{Value, json};

use super::{approval_line, clip, gated_header, headline, limit_line, step_lines};

/// Escapes text for Slack mrkdwn (`&`, `<`, `>` are control characters there).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn section(title: &str, lines: &[String]) -> Value {
    let body: Vec<String> = lines.iter().map(|l| format!("• {}", esc(l))).collect();
    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&format!("*{title}*\n{}", body.join("\n")), 3000)}})
}

/// The Block Kit message for `event`.
pub fn message(event: Event, incident: &Incident, links: &Links) -> Value {
    let a = &incident.alert;
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&format!("Incident {}: {}", incident.id, a.rule), 150)}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Policy*\n{}", esc(&incident.policy))},
            {"type": "mrkdwn", "text": format!("*Severity*\n{} ({})", a.severity, a.source)},
            {"type": "mrkdwn", "text": format!("*Alerts*\n{}", incident.tally.alert_count)},
            {"type": "mrkdwn", "text": format!("*First seen*\n{}", incident.created_at)},
        ]}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&format!("```{}```", esc(&a.summary)), 3000)}}),
    ];
    let auto = step_lines(incident, false);
    if !auto.is_empty() {
        blocks.push(section("Done automatically", &auto));
    }
    let gated = step_lines(incident, true);
    if !gated.is_empty() {
        blocks.push(section(gated_header(incident), &gated));
    }
    if let Some(line) = limit_line(incident) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", esc(&line))}}));
    }
    let mut buttons: Vec<Value> = links
        .approvals
        .iter()
        .take(24)
        .map(|l| {
            json!({"type": "button", "style": "danger", "url": l.url,
                   "text": {"type": "plain_text", "text": clip(&format!("Review and decide ({})", l.slot), 75)}})
        })
        .collect();
    if let Some(url) = &links.console {
        buttons
            .push(json!({"type": "button", "url": url, "text": {"type": "plain_text", "text": "Open in the console"}}));
    }
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    if let Some(line) = approval_line(incident) {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": esc(&line)}]}));
    }
    json!({"text": clip(&esc(&headline(event, incident)), 3000), "blocks": blocks})
}
