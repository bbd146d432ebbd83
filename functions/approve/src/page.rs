//! The server-rendered approval page: no JavaScript, readable on a phone, every alert-derived
//! string escaped (alert text is attacker-controlled).

use std::fmt::Write as _;

use riposte_core::incident::{ApprovalState, Incident, StepStatus};
use riposte_core::store::status_name;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;line-height:1.45;color:#1b1b1b}\
h1{font-size:1.35rem}h2{font-size:1.1rem;margin-top:1.5rem}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.35rem .4rem;border-bottom:1px solid #ddd;vertical-align:top;overflow-wrap:anywhere}\
.step td:first-child,.step td:last-child{white-space:nowrap}\
.state{display:inline-block;padding:.15rem .5rem;border-radius:.3rem;background:#eee}\
.approve{background:#b00020;color:#fff}.reject{background:#fff;color:#1b1b1b;border:2px solid #1b1b1b}\
button{font-size:1.05rem;padding:.7rem 1.3rem;margin:.3rem .5rem .3rem 0;border-radius:.4rem;border:0;cursor:pointer}\
pre{white-space:pre-wrap;background:#f6f6f6;padding:.6rem;font-size:.85rem}.muted{color:#555}\
.failed{background:#f9d6d5}.awaiting_approval{background:#ffe9a8}.running{background:#dbe8fb}.done{background:#d9f0da}\
.filter label{margin-right:.6rem}.filter button{font-size:.95rem;padding:.35rem .9rem;background:#1b1b1b;color:#fff}\
body:has(.console){max-width:72rem}.console-step{border-top:1px solid #bbb;margin-top:1rem}.console-step th,#alerts th{width:7rem;white-space:nowrap}\
h3{font-size:1rem;margin:.8rem 0 .3rem}td.when{white-space:nowrap}details{margin:.4rem 0}summary{cursor:pointer}";

/// A full HTML document.
pub fn document(title: &str, body: &str, refresh: bool) -> String {
    let refresh = if refresh { "<meta http-equiv=\"refresh\" content=\"2\">" } else { "" };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"referrer\" content=\"same-origin\">{refresh}<title>{}</title><style>{STYLE}</style></head>\
<body><main>{body}</main></body></html>",
        escape(title)
    )
}

/// A page that explains why a link cannot be used.
pub fn problem(title: &str, message: &str) -> String {
    document(
        title,
        &format!("<h1>{}</h1><p>{}</p><p class=\"muted\">Nothing was changed.</p>", escape(title), escape(message)),
        false,
    )
}

/// The approval page for `incident`, as seen through the link of `slot`.
pub fn approval_page(incident: &Incident, slot: &str, notice: Option<&str>) -> String {
    let mut b = String::new();
    let a = &incident.alert;
    let Some(approval) = &incident.approval else {
        return problem("Nothing to approve", "This incident has no approval request.");
    };
    let _ = write!(b, "<h1>Approve containment for incident {}</h1>", escape(&incident.id));
    if let Some(n) = notice {
        let _ = write!(b, "<p role=\"status\"><strong>{}</strong></p>", escape(n));
    }
    let state = match approval.state {
        ApprovalState::Pending => "waiting for approval",
        ApprovalState::Approved => "approved",
        ApprovalState::Rejected => "rejected",
        ApprovalState::Expired => "expired",
    };
    let approvals = approval.decisions.iter().filter(|d| d.approve).count();
    let _ = write!(
        b,
        "<p>Status: <span class=\"state\" id=\"approval-state\">{state}</span> · {approvals} of {} approval(s) · expires {} · link for <strong>{}</strong></p>",
        approval.required,
        escape(&approval.expires_at.to_string()),
        escape(slot)
    );
    if let Some(reason) = &incident.limit_reached {
        let _ = write!(
            b,
            "<p id=\"limit-reached\"><strong>{}</strong>: the containment below did not run automatically.</p>",
            escape(reason)
        );
    }
    let _ = write!(b, "<h2>Alert</h2><table><tbody>");
    for (k, v) in [
        ("Policy", incident.policy.clone()),
        ("Source", a.source.to_string()),
        ("Severity", a.severity.to_string()),
        ("Rule", a.rule.clone()),
        ("First seen", incident.created_at.to_string()),
        ("Alerts", incident.tally.alert_count.to_string()),
    ] {
        let _ = write!(b, "<tr><th scope=\"row\">{k}</th><td>{}</td></tr>", escape(&v));
    }
    let _ = write!(b, "</tbody></table><pre>{}</pre>", escape(&a.summary.chars().take(1000).collect::<String>()));

    let _ = write!(
        b,
        "<h2>What runs if approved</h2><table><thead><tr><th>Step</th><th>Target</th><th>Status</th></tr></thead><tbody>"
    );
    for s in incident.steps.iter().filter(|s| s.gated) {
        let target = s.target.as_ref().map(|t| t.describe()).unwrap_or_else(|| "-".into());
        let status = match &s.status {
            StepStatus::Skipped { reason } => format!("skipped: {reason}"),
            StepStatus::Failed { error } => format!("failed: {error}"),
            other => status_name(other).replace('_', " "),
        };
        let _ = write!(
            b,
            "<tr class=\"step\"><td>{}</td><td>{}</td><td class=\"step-status\">{}</td></tr>",
            escape(s.action.name()),
            escape(&target),
            escape(&status)
        );
    }
    let _ = write!(b, "</tbody></table>");
    let _ = write!(b, "<h2>Already done automatically</h2><ul>");
    for s in incident.steps.iter().filter(|s| !s.gated) {
        let _ =
            write!(b, "<li>{}: {}</li>", escape(s.action.name()), escape(&status_name(&s.status).replace('_', " ")));
    }
    let _ = write!(b, "</ul>");

    if approval.state == ApprovalState::Pending {
        let _ = write!(
            b,
            "<form method=\"post\"><p>Approving runs the steps above, in order, now.</p>\
<button class=\"approve\" type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
<button class=\"reject\" type=\"submit\" name=\"decision\" value=\"reject\">Reject</button></form>"
        );
    } else {
        let decided: Vec<String> = approval
            .decisions
            .iter()
            .map(|d| format!("{} by {} at {}", if d.approve { "approved" } else { "rejected" }, d.by, d.at))
            .collect();
        let _ = write!(b, "<p id=\"decided\">Already decided: {}.</p>", escape(&decided.join("; ")));
    }
    let refresh =
        incident.steps.iter().any(|s| s.gated && matches!(s.status, StepStatus::Pending | StepStatus::Running));
    document(&format!("riposte incident {}", incident.id), &b, refresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(
            escape("<script>alert('x')</script>&\"\u{1b}[31m"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\u{FFFD}[31m"
        );
    }
}
