//! Turning a matched alert into an incident candidate: its key, its steps and their targets.

use std::sync::atomic::{AtomicU64, Ordering};

use jiff::{SignedDuration, Timestamp};

use crate::action::Action;
use crate::alert::Alert;
use crate::digest::digest;
use crate::incident::{Approval, ApprovalState, Incident, Step, StepStatus, Tally};
use crate::locate::Placement;
use crate::policy::{Defaults, Policy};
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

/// A new incident for `alert` (defaults already applied) under `policy`, created at `now`, with no
/// cluster lookup (replays, local dry runs). See [`plan_located`].
pub fn plan_incident(policy: &Policy, defaults: &Defaults, alert: &Alert, now: Timestamp) -> Incident {
    plan_located(policy, defaults, alert, &Placement::default(), now)
}

/// A new incident for `alert` (defaults already applied) under `policy`, created at `now`, its
/// targets completed from what the cluster said (`placement`: the pod's node and VM, and the UIDs
/// destructive steps require). Steps whose target cannot be resolved are `skipped` with the
/// reason; destructive steps wait for approval. The incident key depends on the alert only, so an
/// alert whose lookup failed still joins the incident of one whose lookup succeeded.
pub fn plan_located(
    policy: &Policy,
    defaults: &Defaults,
    alert: &Alert,
    placement: &Placement,
    now: Timestamp,
) -> Incident {
    let (key, key_parts) = incident_key(policy, alert);
    // The sequence keeps ids distinct even for two candidates of one key in the same nanosecond.
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed).to_string();
    let nanos = now.as_nanosecond().to_string();
    let pid = std::process::id().to_string();
    let id = format!("{}-{}", now.strftime("%Y%m%d-%H%M%S"), &digest(&[&key, &nanos, &sequence, &pid])[..8]);
    // Callers apply the policy file's defaults first (PolicySet::apply_defaults).
    let hints = &alert.resource;

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
            let resolved =
                Target::resolve(action.target_kind(), hints, placement).and_then(|t| protect(action, t, defaults));
            let (target, status, requests) = match resolved {
                Ok(t) => {
                    let requests = action.requests(&t, &id, &idempotency_key);
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
                released: None,
                ended_at: None,
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
        tally: Tally::opened(now, policy.dedup_window.as_secs()),
        dry_run: policy.dry_run,
        notify: policy.notify.clone(),
        alert: alert.clone(),
        steps,
        approval,
        limit_reached: None,
        journal: Vec::new(),
    };
    let line = format!(
        "opened by {} alert {:?} ({}) under policy {:?}",
        alert.source, alert.rule, alert.severity, policy.name
    );
    incident.note(now, line);
    if let Some(line) = located_line(placement) {
        incident.note(now, line);
    }
    for note in &placement.notes {
        incident.note(now, format!("cluster lookup: {note}"));
    }
    incident
}

/// The journal line recording what the cluster said at plan time, if it said anything.
fn located_line(placement: &Placement) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(uid) = &placement.pod_uid {
        parts.push(format!("pod uid {uid}"));
    }
    if let Some(node) = &placement.node {
        let uid = placement.node_uid.as_deref().map(|u| format!(" (uid {u})")).unwrap_or_default();
        parts.push(format!("node {node}{uid}"));
    }
    if let Some(vm) = &placement.vm {
        parts.push(format!("VM {}/{}/{}", vm.project, vm.zone, vm.name));
    }
    if let Some(pool) = &placement.pool {
        parts.push(format!("node pool {} of {} nodes", pool.name, pool.nodes));
    }
    (!parts.is_empty()).then(|| format!("located in the cluster: {}", parts.join(", ")))
}

/// Namespaces whose workloads are never deleted unless the action names them.
pub const ALWAYS_PROTECTED: [&str; 1] = ["kube-system"];

/// Refuses `delete_workload` in a protected namespace (kube-system and `defaults.protected_namespaces`)
/// unless the action's `allow_namespaces` names it.
fn protect(action: &Action, target: Target, defaults: &Defaults) -> Result<Target, String> {
    let (Action::DeleteWorkload(params), Target::Pod { pod, .. }) = (action, &target) else { return Ok(target) };
    let ns = pod.namespace.as_str();
    let protected = ALWAYS_PROTECTED.contains(&ns) || defaults.protected_namespaces.iter().any(|p| p.as_str() == ns);
    if protected && !params.allow_namespaces.iter().any(|a| a == ns) {
        return Err(format!(
            "namespace {ns} is protected; delete_workload acts there only if the policy lists it in allow_namespaces"
        ));
    }
    Ok(target)
}
