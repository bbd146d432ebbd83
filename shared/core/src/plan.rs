//! Turning a matched alert into an incident candidate: its key, its steps and their targets.

use jiff::{SignedDuration, Timestamp};

use crate::alert::Alert;
use crate::incident::{Approval, ApprovalState, Incident, Step, StepStatus, digest};
use crate::policy::{Defaults, Policy};
use crate::requests::render;
use crate::target::Target;

/// The incident key of `alert` under `policy`: a hash of the policy name and its group_by values,
/// with the values kept for humans.
pub fn incident_key(policy: &Policy, alert: &Alert) -> (String, Vec<(String, String)>) {
    let parts: Vec<(String, String)> = policy.group_by.iter().map(|k| (k.name(), k.value(alert))).collect();
    let mut flat = vec![policy.name.as_str()];
    for (k, v) in &parts {
        flat.push(k);
        flat.push(v);
    }
    (digest(&flat)[..32].to_string(), parts)
}

/// A new incident for `alert` under `policy`, created at `now`. Steps whose target cannot be
/// resolved are `skipped` with the reason; destructive steps wait for approval.
pub fn plan_incident(policy: &Policy, defaults: &Defaults, alert: &Alert, now: Timestamp) -> Incident {
    let (key, key_parts) = incident_key(policy, alert);
    let id = format!("{}-{}", now.strftime("%Y%m%d-%H%M%S"), &digest(&[&key, &now.as_nanosecond().to_string()])[..8]);
    let mut hints = alert.resource.clone();
    hints.fill_from(defaults.hints());

    let steps: Vec<Step> = policy
        .actions
        .iter()
        .chain(&policy.on_approval)
        .enumerate()
        .map(|(index, action)| {
            let idempotency_key = digest(&[&id, &index.to_string(), action.name()])[..32].to_string();
            let class = action.class();
            // A safe action listed under on_approval still waits for the approval.
            let gated = index >= policy.actions.len();
            let (target, status, requests) = match Target::resolve(action.target_kind(), &hints) {
                Ok(t) => {
                    let requests = render(action, &t, &id, &idempotency_key);
                    let status = if gated { StepStatus::AwaitingApproval } else { StepStatus::Pending };
                    (Some(t), status, requests)
                }
                Err(reason) => (None, StepStatus::Skipped { reason }, Vec::new()),
            };
            Step {
                index,
                action: action.clone(),
                class,
                gated,
                target,
                status,
                attempts: 0,
                idempotency_key,
                lease: None,
                requests,
                report: None,
            }
        })
        .collect();

    let gated: Vec<_> =
        steps.iter().filter(|s| s.status == StepStatus::AwaitingApproval).map(|s| s.action.clone()).collect();
    let approval = (!gated.is_empty()).then(|| Approval {
        plan_hash: Incident::plan_hash(&steps),
        required: policy.approval.required_for_actions(&gated),
        approvers: policy.approval.approvers.clone(),
        expires_at: now
            .checked_add(SignedDuration::from_secs(policy.approval.expires_in.as_secs() as i64))
            .unwrap_or(now),
        state: ApprovalState::Pending,
        decisions: Vec::new(),
    });

    let mut incident = Incident {
        id,
        key,
        key_parts,
        policy: policy.name.clone(),
        created_at: now,
        last_seen: now,
        alert_count: 1,
        dedup_window_secs: policy.dedup_window.as_secs(),
        resolved_at: None,
        dry_run: policy.dry_run,
        notify: policy.notify.clone(),
        alert: alert.clone(),
        steps,
        approval,
        journal: Vec::new(),
    };
    let line = format!(
        "opened by {} alert {:?} ({}) under policy {:?}",
        alert.source, alert.rule, alert.severity, policy.name
    );
    incident.note(now, line);
    incident
}
