//! From parsed alerts to durable incidents: match, plan, record. Shared by the HTTP endpoints and
//! the tests; `riposte replay` uses the same matching and planning without the store.

use jiff::Timestamp;
use serde::Serialize;

use crate::action::ActionClass;
use crate::alert::{Alert, AlertStatus};
use crate::incident::{Incident, StepStatus};
use crate::locate::{Locator, Placement};
use crate::plan::{incident_key, plan_located};
use crate::policy::PolicySet;
use crate::store::{AlertRecord, Store, StoreError, status_name};

/// One step as reported to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepView {
    /// Position in the plan.
    pub index: usize,
    /// Action name.
    pub action: &'static str,
    /// Safe or destructive.
    pub class: ActionClass,
    /// Target, described.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Status name (`pending`, `awaiting_approval`, `skipped`, …).
    pub status: &'static str,
    /// Why it was skipped, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl StepView {
    /// The views of an incident's steps.
    pub fn of(incident: &Incident) -> Vec<StepView> {
        incident
            .steps
            .iter()
            .map(|s| StepView {
                index: s.index,
                action: s.action.name(),
                class: s.class,
                target: s.target.as_ref().map(|t| t.describe()),
                status: status_name(&s.status),
                reason: match &s.status {
                    StepStatus::Skipped { reason } => Some(reason.clone()),
                    _ => None,
                },
            })
            .collect()
    }
}

/// What became of one alert under one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentOutcome {
    /// The policy.
    pub policy: String,
    /// The incident (none for a resolved alert with no open incident).
    pub incident_id: Option<String>,
    /// Joined an open incident: no new steps.
    pub duplicate: bool,
    /// The alert was a resolution (closed Monitoring incident): never starts actions.
    pub resolved: bool,
    /// Steps this alert started (empty for duplicates and resolutions).
    pub steps: Vec<StepView>,
}

/// What became of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertOutcome {
    /// The alert's rule.
    pub rule: String,
    /// Policies that matched, in order.
    pub matched_policies: Vec<String>,
    /// One per matched policy.
    pub incidents: Vec<IncidentOutcome>,
}

/// Matches, plans and records `alerts`. A firing alert that matched a policy is first located in
/// its cluster (`locator`: the pod's UID, node and VM), so that the plan's targets are the objects
/// that raised it. Returns the outcomes and the incidents that were opened (for the runner and
/// the notifiers). Everything is durable when this returns.
pub async fn ingest(
    policies: &PolicySet,
    store: &dyn Store,
    locator: &dyn Locator,
    mut alerts: Vec<Alert>,
    now: Timestamp,
) -> Result<(Vec<AlertOutcome>, Vec<Incident>), StoreError> {
    policies.apply_defaults(&mut alerts);
    let mut outcomes = Vec::new();
    let mut opened = Vec::new();
    for alert in &alerts {
        let matches = policies.matches(alert);
        let placement = if alert.status == AlertStatus::Firing && !matches.is_empty() {
            locator.locate(&alert.resource).await
        } else {
            Placement::default()
        };
        let mut incidents = Vec::new();
        for m in &matches {
            if alert.status == AlertStatus::Resolved {
                let (key, _) = incident_key(m.policy, alert);
                let id = store.record_resolution(&key, now, AlertRecord::for_alert(alert, now, String::new())).await?;
                incidents.push(IncidentOutcome {
                    policy: m.policy.name.clone(),
                    incident_id: id,
                    duplicate: false,
                    resolved: true,
                    steps: Vec::new(),
                });
                continue;
            }
            let candidate = plan_located(m.policy, &policies.defaults, alert, &placement, now);
            let recorded = store.record_alert(candidate.clone(), now).await?;
            let steps = if recorded.duplicate { Vec::new() } else { StepView::of(&candidate) };
            incidents.push(IncidentOutcome {
                policy: m.policy.name.clone(),
                incident_id: Some(recorded.incident_id),
                duplicate: recorded.duplicate,
                resolved: false,
                steps,
            });
            if !recorded.duplicate {
                opened.push(candidate);
            }
        }
        if incidents.is_empty() {
            store.log_alert(AlertRecord::for_alert(alert, now, "no policy matched".into())).await?;
        }
        outcomes.push(AlertOutcome {
            rule: alert.rule.clone(),
            matched_policies: matches.iter().map(|m| m.policy.name.clone()).collect(),
            incidents,
        });
    }
    Ok((outcomes, opened))
}
