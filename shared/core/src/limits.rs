//! Blast-radius limits: a noisy rule across a hundred nodes must not cut a hundred nodes off with
//! no human asked. An incident's automatic containment (the steps whose action
//! [`contains`](crate::action::ActionMeta::contains)) claims its nodes and pods against every limit
//! of its policy and of the file, when it opens, in the same atomic write that opens it
//! ([`crate::store::admit`]): every instance shares one count per limit. Past a limit nothing is
//! dropped: snapshots and labels still run, and the containment steps wait for approval with the
//! reason. An object already counted in the window (a second incident on the same node) takes no
//! new room.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::digest::digest;
use crate::incident::{Approval, ApprovalState, Incident, Step, StepStatus};
use crate::locate::{NodePool, Placement};
use crate::policy::{ApprovalSettings, Limit, Policy, PolicySet, PoolLimit, Unit};
use crate::target::Target;

/// One limit an opening incident's automatic containment counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The store's record of this limit (`nodes.all`, `nodes.policy.<hash>`): safe as a
    /// Firestore document id and a redb key.
    pub scope: String,
    /// The limit.
    pub limit: Limit,
    /// Why containment waits when the limit has no room: `limit reached: 3 nodes in 1h (policy "x")`.
    pub reason: String,
    /// The objects the incident contains automatically: sorted, distinct.
    pub objects: Vec<String>,
}

/// An object contained automatically, as a limit's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    /// The object (`project/node`, `project/location/cluster/namespace/pod`).
    pub object: String,
    /// The incident that contained it.
    pub incident: String,
    /// When.
    pub at: Timestamp,
}

/// A limit's record: the objects contained automatically, newest last. It never holds more than
/// the limit's `max`, since nothing is added past it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Objects contained within the last window (older ones are dropped when the record is written).
    pub counted: Vec<Counted>,
}

impl Quota {
    fn in_window(&self, limit: Limit, now: Timestamp) -> impl Iterator<Item = &Counted> {
        let window = SignedDuration::from_secs(limit.per.as_secs() as i64);
        self.counted.iter().filter(move |c| now.duration_since(c.at) < window)
    }

    /// Whether containing `claim.objects` at `now` stays within the limit.
    pub fn has_room(&self, claim: &Claim, now: Timestamp) -> bool {
        let mut objects: BTreeSet<&str> = self.in_window(claim.limit, now).map(|c| c.object.as_str()).collect();
        objects.extend(claim.objects.iter().map(String::as_str));
        objects.len() <= claim.limit.max as usize
    }

    /// Counts `claim.objects` for `incident` at `now`, dropping what left the window.
    pub fn take(&mut self, claim: &Claim, incident: &str, now: Timestamp) {
        let mut kept: Vec<Counted> = self.in_window(claim.limit, now).cloned().collect();
        for object in &claim.objects {
            if !kept.iter().any(|c| &c.object == object) {
                kept.push(Counted { object: object.clone(), incident: incident.to_string(), at: now });
            }
        }
        self.counted = kept;
    }
}

/// The limits' records a store read for one admission, and which of them it changed.
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    /// By scope; a scope the store had no record of is an empty quota.
    records: BTreeMap<String, Quota>,
    /// Scopes to write back.
    changed: BTreeSet<String>,
}

impl Quotas {
    /// Adds the record of `scope` as the store holds it.
    pub fn read(&mut self, scope: String, quota: Quota) {
        self.records.insert(scope, quota);
    }

    /// The records claims changed, to write in the same commit as the incidents they opened.
    pub fn changed(&self) -> impl Iterator<Item = (&str, &Quota)> {
        self.changed.iter().filter_map(|s| Some((s.as_str(), self.records.get(s)?)))
    }

    /// Claims every limit of `claims` for `incident` at `now`, or none: `Err` is the reason of the
    /// first limit without room.
    pub fn claim(&mut self, claims: &[Claim], incident: &str, now: Timestamp) -> Result<(), String> {
        let empty = Quota::default();
        if let Some(full) = claims.iter().find(|c| !self.records.get(&c.scope).unwrap_or(&empty).has_room(c, now)) {
            return Err(full.reason.clone());
        }
        for claim in claims {
            self.records.entry(claim.scope.clone()).or_default().take(claim, incident, now);
            self.changed.insert(claim.scope.clone());
        }
        Ok(())
    }
}

/// An incident planned for an alert that opens one, with what its opening counts against.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The plan as it opens within every limit.
    pub incident: Incident,
    /// The limits its automatic containment counts against; empty when none applies.
    pub claims: Vec<Claim>,
    /// The policy's approval settings, for the approval a limit asks for.
    approval: ApprovalSettings,
}

impl Candidate {
    /// `incident`, planned under `policy` of `set` with what the cluster said (`placement`: the
    /// node's pool), with the limits it counts against.
    pub fn new(incident: Incident, policy: &Policy, set: &PolicySet, placement: &Placement) -> Candidate {
        let mut objects: BTreeMap<Unit, BTreeSet<String>> = BTreeMap::new();
        for step in incident.steps.iter().filter(|s| holds(s)) {
            if let Some((unit, object)) = step.target.as_ref().and_then(contained_object) {
                objects.entry(unit).or_default().insert(object);
            }
        }
        // A dry-run policy contains nothing: it shows what its own limits would do, but takes no
        // room from the file's, or a policy on trial would hold back the real ones.
        let file = (!incident.dry_run).then(|| (&set.limits, "all".to_string(), "all policies".to_string()));
        let own =
            (&policy.limits, format!("policy.{}", &digest(&[&policy.name])[..16]), format!("policy {:?}", policy.name));
        let owners = file.into_iter().chain([own]);
        let pool = pool_of(&incident, placement);
        let mut claims = Vec::new();
        for (limits, scope, owner) in owners {
            for (&unit, objects) in &objects {
                let objects: Vec<String> = objects.iter().cloned().collect();
                if let Some(limit) = limits.on(unit) {
                    claims.push(Claim {
                        scope: format!("{}.{scope}", unit.name()),
                        limit,
                        reason: format!("limit reached: {} ({owner})", limit.describe(unit)),
                        objects: objects.clone(),
                    });
                }
                if let (Some(share), Unit::Nodes) = (limits.node_pool, unit) {
                    claims.push(pool_claim(share, pool.as_ref(), &scope, &owner, objects));
                }
            }
        }
        Candidate { incident, claims, approval: policy.approval.clone() }
    }

    /// `incident` with no limit to count against: for tools and tests that record an incident
    /// outside admission's planning.
    pub fn unlimited(incident: Incident) -> Candidate {
        Candidate { incident, claims: Vec::new(), approval: ApprovalSettings::default() }
    }

    /// The incident as it opens: as planned, or, when a limit was reached (`held` is its reason),
    /// with its automatic containment waiting for approval.
    pub fn opening(&self, held: Option<&str>) -> Incident {
        let mut incident = self.incident.clone();
        let Some(reason) = held else { return incident };
        for step in incident.steps.iter_mut().filter(|s| holds(s)) {
            step.gated = true;
            step.status = StepStatus::AwaitingApproval;
        }
        let gated: Vec<_> = incident.steps.iter().filter(|s| s.gated).map(|s| s.action.clone()).collect();
        let now = incident.created_at;
        let expires_at =
            now.checked_add(SignedDuration::from_secs(self.approval.expires_in.as_secs() as i64)).unwrap_or(now);
        incident.approval = Some(Approval {
            plan_hash: Incident::plan_hash(&incident.steps),
            required: self.approval.required_for_actions(&gated),
            approvers: self.approval.approvers.clone(),
            expires_at,
            state: ApprovalState::Pending,
            decisions: Vec::new(),
        });
        incident.limit_reached = Some(reason.to_string());
        incident.note(now, format!("{reason}: the automatic containment waits for approval"));
        incident
    }
}

/// The node pool the incident's node is in, with its size and a scope id unique to the cluster and
/// pool; `None` when the cluster did not say.
fn pool_of(incident: &Incident, placement: &Placement) -> Option<(NodePool, String)> {
    let pool = placement.pool.clone()?;
    let r = &incident.alert.resource;
    let (project, location, cluster) = (r.project.as_ref()?, r.location.as_ref()?, r.cluster.as_ref()?);
    let id = digest(&[project.as_str(), location.as_str(), cluster.as_str(), &pool.name])[..16].to_string();
    Some((pool, id))
}

/// The claim of `objects` (nodes) against `share` of their pool. A pool the cluster did not
/// describe cannot be checked: the claim then has no room, and the containment waits for a human.
fn pool_claim(
    share: PoolLimit,
    pool: Option<&(NodePool, String)>,
    scope: &str,
    owner: &str,
    objects: Vec<String>,
) -> Claim {
    let within = share.describe();
    match pool {
        Some((pool, id)) => {
            let limit = share.of(pool.nodes);
            Claim {
                scope: format!("node_pool.{scope}.{id}"),
                limit,
                reason: format!(
                    "limit reached: {} ({within}: pool {} has {} nodes; {owner})",
                    limit.describe(Unit::Nodes),
                    pool.name,
                    pool.nodes
                ),
                objects,
            }
        }
        None => Claim {
            scope: format!("node_pool.{scope}.unknown"),
            limit: share.of(0),
            reason: format!("limit not checked: the node's pool is unknown ({within}; {owner})"),
            objects,
        },
    }
}

/// Whether a limit holds `step` back: automatic containment that is about to run.
fn holds(step: &Step) -> bool {
    !step.gated && step.status == StepStatus::Pending && step.action.contains()
}

/// What a limit counts a containment of `target` as: a node and its VM are one object (on GKE a
/// node's name is its VM's name).
fn contained_object(target: &Target) -> Option<(Unit, String)> {
    match target {
        Target::Node { cluster, node, .. } => Some((Unit::Nodes, format!("{}/{node}", cluster.project))),
        Target::Instance { project, name: Some(name), .. } => Some((Unit::Nodes, format!("{project}/{name}"))),
        Target::Instance { project, id: Some(id), .. } => Some((Unit::Nodes, format!("{project}/id:{id}"))),
        Target::Instance { .. } => None,
        Target::Pod { cluster, pod, .. } => Some((
            Unit::Pods,
            format!("{}/{}/{}/{}/{}", cluster.project, cluster.location, cluster.cluster, pod.namespace, pod.name),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;
    use crate::locate::Placement;
    use crate::plan::plan_located;
    use proptest::prelude::*;

    const FILE: &str = "
version: 1
defaults: {project: shop-prod, location: europe-west1, cluster: prod}
limits:
  nodes: {max: 5, per: 1h}
policies:
  - name: contain
    match: {}
    limits:
      nodes: {max: 2, per: 1h}
    actions: [snapshot_disks, label_instance, quarantine_instance, isolate_pod, cordon_node]
    on_approval: [drain_node]
";

    fn t(secs: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_800_000_000 + secs)
    }

    fn candidate(node: &str, at: Timestamp) -> Candidate {
        let set = PolicySet::from_yaml(FILE).expect("policy");
        let mut alert: Alert = serde_json::from_value(serde_json::json!({
            "source": "falco", "delivery": "webhook", "severity": "critical", "rule": "r", "summary": "",
            "time": at, "status": "firing", "fields": {}, "tags": [], "raw": null,
            "resource": {"node": node, "namespace": "shop", "pod": format!("web-{node}")},
        }))
        .expect("alert");
        set.apply_defaults(std::slice::from_mut(&mut alert));
        let policy = &set.policies[0];
        let placement = Placement::default();
        Candidate::new(plan_located(policy, &set.defaults, &alert, &placement, at), policy, &set, &placement)
    }

    #[test]
    fn a_node_and_its_vm_are_one_object_claimed_against_the_file_and_the_policy() {
        let c = candidate("gke-prod-pool-1", t(0));
        let scopes: Vec<(&str, &str, Vec<String>)> =
            c.claims.iter().map(|c| (c.scope.as_str(), c.reason.as_str(), c.objects.clone())).collect();
        // quarantine_instance (the VM) and cordon_node (the node) contain one machine.
        let node = vec!["shop-prod/gke-prod-pool-1".to_string()];
        assert_eq!(scopes.len(), 2, "no pod limit is set, so isolate_pod claims nothing: {scopes:?}");
        assert_eq!(
            (scopes[0].0, scopes[0].1, &scopes[0].2),
            ("nodes.all", "limit reached: 5 nodes in 1h (all policies)", &node)
        );
        assert!(scopes[1].0.starts_with("nodes.policy.") && scopes[1].1.ends_with("(policy \"contain\")"));
        assert_eq!(scopes[1].2, node);
    }

    #[test]
    fn past_the_limit_containment_waits_for_approval_and_evidence_still_runs() {
        let mut quotas = Quotas::default();
        let mut opened = Vec::new();
        for (i, node) in ["n1", "n2", "n3"].iter().enumerate() {
            let c = candidate(node, t(i as i64));
            let held = quotas.claim(&c.claims, &c.incident.id, t(i as i64)).err();
            opened.push(c.opening(held.as_deref()));
        }
        for within in &opened[..2] {
            assert!(within.limit_reached.is_none());
            assert!(
                within
                    .steps
                    .iter()
                    .filter(|s| s.action.contains())
                    .all(|s| !s.gated && s.status == StepStatus::Pending)
            );
        }
        let held = &opened[2];
        assert_eq!(held.limit_reached.as_deref(), Some("limit reached: 2 nodes in 1h (policy \"contain\")"));
        let status: Vec<(&str, bool, &str)> =
            held.steps.iter().map(|s| (s.action.name(), s.gated, crate::store::status_name(&s.status))).collect();
        assert_eq!(
            status,
            [
                ("snapshot_disks", false, "pending"),
                ("label_instance", false, "pending"),
                ("quarantine_instance", true, "awaiting_approval"),
                ("isolate_pod", true, "awaiting_approval"),
                ("cordon_node", true, "awaiting_approval"),
                ("drain_node", true, "awaiting_approval"),
            ]
        );
        let approval = held.approval.as_ref().expect("an approval request");
        assert_eq!(approval.plan_hash, Incident::plan_hash(&held.steps), "links sign the plan as held");
        assert_eq!(approval.state, ApprovalState::Pending);
        assert!(held.journal.iter().any(|j| j.message.starts_with("limit reached: 2 nodes in 1h")));
        // The held incident claimed nothing: the policy's record still has the first two nodes.
        let (_, policy_quota) = quotas.changed().find(|(s, _)| s.starts_with("nodes.policy.")).expect("record");
        assert_eq!(
            policy_quota.counted.iter().map(|c| c.object.as_str()).collect::<Vec<_>>(),
            ["shop-prod/n1", "shop-prod/n2"]
        );
    }

    #[test]
    fn a_dry_run_policy_counts_against_its_own_limits_only() {
        let set =
            PolicySet::from_yaml(&FILE.replace("    match: {}", "    match: {}\n    dry_run: true")).expect("policy");
        let c = candidate("n1", t(0));
        let placement = Placement::default();
        let mut incident = c.incident;
        incident.dry_run = true;
        let dry = Candidate::new(incident, &set.policies[0], &set, &placement);
        let scopes: Vec<&str> = dry.claims.iter().map(|c| c.scope.as_str()).collect();
        assert_eq!(scopes.len(), 1);
        assert!(scopes[0].starts_with("nodes.policy."), "{scopes:?}");
    }

    #[test]
    fn an_object_already_counted_takes_no_room_and_the_window_frees_it() {
        let mut quotas = Quotas::default();
        for node in ["n1", "n2"] {
            let c = candidate(node, t(0));
            assert!(quotas.claim(&c.claims, &c.incident.id, t(0)).is_ok());
        }
        let again = candidate("n1", t(60));
        assert!(quotas.claim(&again.claims, &again.incident.id, t(60)).is_ok(), "n1 is contained already");
        let third = candidate("n3", t(60));
        assert!(quotas.claim(&third.claims, &third.incident.id, t(60)).is_err());
        let later = candidate("n3", t(3600));
        assert!(quotas.claim(&later.claims, &later.incident.id, t(3600)).is_ok(), "an hour later the window is free");
    }

    #[test]
    fn a_node_pool_share_counts_whole_nodes_and_an_unknown_pool_waits_for_a_human() {
        let file = FILE.replace("nodes: {max: 2, per: 1h}", "node_pool: {percent: 20, per: 1h}");
        let set = PolicySet::from_yaml(&file).expect("policy");
        let policy = &set.policies[0];
        let plan = |node: &str, pool: Option<u32>| {
            let c = candidate(node, t(0));
            let placement =
                Placement { pool: pool.map(|nodes| NodePool { name: "spot".into(), nodes }), ..Placement::default() };
            Candidate::new(c.incident, policy, &set, &placement)
        };
        let mut quotas = Quotas::default();
        let outcomes: Vec<Option<String>> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| {
                let c = plan(n, Some(10));
                quotas.claim(&c.claims, &c.incident.id, t(0)).err()
            })
            .collect();
        assert_eq!(
            outcomes,
            [None, None, Some("limit reached: 2 nodes in 1h (20% of a node pool in 1h: pool spot has 10 nodes; policy \"contain\")".into())]
        );
        // 20 % of a 4-node pool is no whole node.
        let small = plan("n9", Some(4));
        assert!(Quotas::default().claim(&small.claims, &small.incident.id, t(0)).is_err());
        let unknown = plan("n1", None);
        let held = Quotas::default().claim(&unknown.claims, &unknown.incident.id, t(0)).expect_err("unknown pool");
        assert!(held.starts_with("limit not checked: the node's pool is unknown"), "{held}");
    }

    proptest! {
        /// Whatever the order, times and repeats of claims, no window ever holds more distinct
        /// objects than the limit, and a claim is refused only when it would exceed it.
        #[test]
        fn no_window_holds_more_than_the_limit(
            max in 1u32..5,
            claims in proptest::collection::vec((0usize..8, 0i64..7200), 1..40),
        ) {
            let limit = Limit { max, per: std::time::Duration::from_secs(3600) };
            let mut quotas = Quotas::default();
            let mut granted: Vec<(usize, i64)> = Vec::new();
            let mut claims = claims;
            claims.sort_by_key(|c| c.1);
            for (object, at) in claims {
                let claim = Claim {
                    scope: "nodes.all".into(),
                    limit,
                    reason: "full".into(),
                    objects: vec![format!("p/n{object}")],
                };
                let ok = quotas.claim(std::slice::from_ref(&claim), "i", t(at)).is_ok();
                let in_window: BTreeSet<usize> = granted.iter().filter(|g| at - g.1 < 3600).map(|g| g.0).collect();
                let room = in_window.contains(&object) || in_window.len() < max as usize;
                prop_assert_eq!(ok, room);
                if ok && !in_window.contains(&object) {
                    granted.push((object, at));
                }
            }
        }
    }
}
