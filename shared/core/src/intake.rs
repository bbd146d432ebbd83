//! What intake answers about each alert: the policies that took it, its incidents, and the steps
//! an incident it opened will run ([`crate::admission`] produces them).

use serde::Serialize;

use crate::action::ActionClass;
use crate::incident::{Incident, StepStatus};
use crate::store::status_name;

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
    /// The incident's alert count once this alert was counted (a storm's senders can add them up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_count: Option<u64>,
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
