//! Google Chat incoming webhook: a cardsV2 card (header, sections of widgets, link buttons).

use riposte_core::incident::Incident;
use riposte_core::notify::{Event, Links};
use serde_json::{Value, json};

use super::{approval_line, clip, gated_header, headline, limit_line, step_lines};

/// Escapes text for Chat's small HTML subset in `textParagraph` and `decoratedText`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn paragraph(lines: &[String]) -> Value {
    json!({"textParagraph": {"text": clip(&lines.iter().map(|l| esc(l)).collect::<Vec<_>>().join("<br>"), 4000)}})
}

/// The cardsV2 message for `event`.
pub fn message(event: Event, incident: &Incident, links: &Links) -> Value {
    let a = &incident.alert;
    let mut sections = vec![json!({"header": "Alert", "widgets": [
        {"decoratedText": {"topLabel": "Policy", "text": esc(&incident.policy)}},
        {"decoratedText": {"topLabel": "Severity", "text": format!("{} ({})", a.severity, a.source)}},
        {"decoratedText": {"topLabel": "Alerts", "text": incident.tally.alert_count.to_string()}},
        paragraph(&[clip(&a.summary, 1000)]),
    ]})];
    let auto = step_lines(incident, false);
    if !auto.is_empty() {
        sections.push(json!({"header": "Done automatically", "widgets": [paragraph(&auto)]}));
    }
    let gated = step_lines(incident, true);
    if !gated.is_empty() {
        let mut widgets = vec![paragraph(&gated)];
        if let Some(line) = limit_line(incident) {
            widgets.push(paragraph(&[line]));
        }
        if let Some(line) = approval_line(incident) {
            widgets.push(paragraph(&[line]));
        }
        if !links.approvals.is_empty() {
            let buttons: Vec<Value> = links
                .approvals
                .iter()
                .map(|l| json!({"text": format!("Review and decide ({})", l.slot), "onClick": {"openLink": {"url": l.url}}}))
                .collect();
            widgets.push(json!({"buttonList": {"buttons": buttons}}));
        }
        sections.push(json!({"header": gated_header(incident), "widgets": widgets}));
    }
    if let Some(url) = &links.console {
        let button = json!({"text": "Open in the console", "onClick": {"openLink": {"url": url}}});
        sections.push(json!({"widgets": [{"buttonList": {"buttons": [button]}}]}));
    }
    json!({
        "text": esc(&headline(event, incident)),
        "cardsV2": [{
            "cardId": format!("riposte-{}", incident.id),
            "card": {
                "header": {"title": clip(&format!("Incident {}", incident.id), 200), "subtitle": clip(&a.rule, 200)},
                "sections": sections,
            }
        }]
    })
}
