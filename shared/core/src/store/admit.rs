//! The rules of admitting a batch of alerts, per incident key: what a store applies between reading
//! a key's current incident and writing the result, so every store admits alike.
//!
//! An alert storm is many alerts of one key arriving together. Admission groups them: a run of
//! alike firing alerts of one key is one [`Arrival`] of `alerts` alerts, counted as one `+N` on the
//! key's open incident. Nothing is planned for a duplicate: an arrival carries a candidate
//! incident only once the store has said that it opens one ([`KeyAdmitted::needs_plan`]). An
//! opening incident claims room under the blast-radius limits ([`crate::limits`]) in the same
//! decision, against the limits' records the store read with the keys.

use jiff::Timestamp;

use super::AlertRecord;
use crate::incident::{Incident, Tally};
use crate::limits::{Candidate, Quotas};

/// Whether alerts still fire or report the condition closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalKind {
    /// Counted on the open incident, or opening one.
    Firing,
    /// A closed Monitoring incident: closes the open incident, never starts anything.
    Resolved,
}

/// Alerts of one key that arrived together and are recorded alike.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Firing or resolved.
    pub kind: ArrivalKind,
    /// How many alerts: a run of alike firing alerts is one arrival; a resolution is always one.
    pub alerts: u64,
    /// When the first of them arrived (decides whether the open incident still takes them).
    pub first_at: Timestamp,
    /// When the last of them arrived (the incident's `last_seen`).
    pub last_at: Timestamp,
    /// Their intake-log line; the store fills in the outcome.
    pub log: AlertRecord,
    /// The incident they open when no open incident takes them. Admission plans it only after the
    /// store asked for it.
    pub candidate: Option<Box<Candidate>>,
}

/// The arrivals of one incident key, in order.
#[derive(Debug, Clone)]
pub struct KeyArrivals {
    /// The incident key.
    pub key: String,
    /// In arrival order.
    pub arrivals: Vec<Arrival>,
}

/// What became of one arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Counted on incident `incident_id`, which the first of the alerts opened when `opened`. The
    /// incident's count after the first of them is `first_count` (after the k-th, `first_count + k`).
    Counted {
        /// The incident.
        incident_id: String,
        /// The first alert opened it (its candidate was created).
        opened: bool,
        /// The incident's alert count right after the first of these alerts.
        first_count: u64,
        /// When it opened past a blast-radius limit: the reason, and its automatic containment
        /// waits for approval ([`Candidate::opening`]).
        limit_reached: Option<String>,
    },
    /// A resolution closed `incident_id`, or found no open incident.
    Resolved {
        /// The incident closed.
        incident_id: Option<String>,
    },
}

/// What became of a key's arrivals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyAdmitted {
    /// One per arrival admitted, in order: the first `admitted.len()` arrivals.
    pub admitted: Vec<Admitted>,
    /// The next arrival opens an incident but carries no candidate: plan it, then admit it and
    /// the arrivals after it again.
    pub needs_plan: bool,
}

/// A key's open (or newest) incident, as a store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The incident.
    pub incident_id: String,
    /// Its tally.
    pub tally: Tally,
}

/// What a store writes for one key, atomically with the rest of the batch.
#[derive(Debug, Clone, Default)]
pub struct KeyWrites {
    /// What to answer.
    pub admitted: KeyAdmitted,
    /// Incidents to create (their tallies are in `tallies`).
    pub opened: Vec<Incident>,
    /// Changed tallies by incident id; the last is the key's current incident's when `current` is set.
    pub tallies: Vec<(String, Tally)>,
    /// The key's current incident after the batch, when it changed.
    pub current: Option<Current>,
    /// Intake-log lines, outcomes filled in.
    pub log: Vec<AlertRecord>,
}

fn line(template: &AlertRecord, count: u64, outcome: String) -> AlertRecord {
    AlertRecord { count, outcome, ..template.clone() }
}

/// The limits' records an admission of `keys` needs: those its candidates claim.
pub fn claimed_scopes(keys: &[KeyArrivals]) -> std::collections::BTreeSet<String> {
    keys.iter()
        .flat_map(|k| &k.arrivals)
        .filter_map(|a| a.candidate.as_ref())
        .flat_map(|c| c.claims.iter().map(|claim| claim.scope.clone()))
        .collect()
}

/// Admits `arrivals` of one key whose current incident is `current`, stopping at the first that
/// needs a candidate it does not carry. An incident it opens claims its room in `quotas`.
pub fn admit_key(current: Option<Current>, arrivals: &[Arrival], quotas: &mut Quotas) -> KeyWrites {
    let mut state = current;
    let mut out = KeyWrites::default();
    let mut changed = false;
    // Tallies of incidents this batch moved away from (closed, then replaced by a new one).
    let mut left: Vec<(String, Tally)> = Vec::new();
    for arrival in arrivals {
        match arrival.kind {
            ArrivalKind::Firing => {
                if let Some(open) = state.as_mut().filter(|c| c.tally.absorbs(arrival.first_at)) {
                    let first_count = open.tally.alert_count + 1;
                    open.tally.count(arrival.alerts, arrival.last_at);
                    out.log.push(line(&arrival.log, arrival.alerts, format!("duplicate of {}", open.incident_id)));
                    out.admitted.admitted.push(Admitted::Counted {
                        incident_id: open.incident_id.clone(),
                        opened: false,
                        first_count,
                        limit_reached: None,
                    });
                } else if let Some(candidate) = &arrival.candidate {
                    let limit_reached = quotas.claim(&candidate.claims, &candidate.incident.id, arrival.first_at).err();
                    let mut incident = candidate.opening(limit_reached.as_deref());
                    incident.tally.count(arrival.alerts - 1, arrival.last_at);
                    if let Some(previous) = state.take().filter(|_| changed) {
                        left.push((previous.incident_id, previous.tally));
                    }
                    let id = incident.id.clone();
                    out.log.push(line(&arrival.log, 1, format!("opened {id}")));
                    if arrival.alerts > 1 {
                        out.log.push(line(&arrival.log, arrival.alerts - 1, format!("duplicate of {id}")));
                    }
                    state = Some(Current { incident_id: id.clone(), tally: incident.tally.clone() });
                    out.opened.push(incident);
                    out.admitted.admitted.push(Admitted::Counted {
                        incident_id: id,
                        opened: true,
                        first_count: 1,
                        limit_reached,
                    });
                } else {
                    out.admitted.needs_plan = true;
                    break;
                }
            }
            ArrivalKind::Resolved => {
                let closed = state.as_mut().filter(|c| c.tally.resolved_at.is_none()).map(|open| {
                    open.tally.count(1, arrival.last_at);
                    open.tally.close(arrival.last_at);
                    open.incident_id.clone()
                });
                let outcome = match &closed {
                    Some(id) => format!("resolved {id}"),
                    None => "resolved; no open incident".into(),
                };
                out.log.push(line(&arrival.log, 1, outcome));
                out.admitted.admitted.push(Admitted::Resolved { incident_id: closed.clone() });
                if closed.is_none() {
                    continue;
                }
            }
        }
        changed = true;
    }
    if changed {
        out.tallies = left;
        if let Some(current) = state {
            out.tallies.push((current.incident_id.clone(), current.tally.clone()));
            out.current = Some(current);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Source;
    use crate::severity::Severity;
    use jiff::SignedDuration;

    fn t(secs: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_800_000_000 + secs)
    }

    fn record() -> AlertRecord {
        AlertRecord {
            received_at: t(0),
            source: Source::Falco,
            rule: "r".into(),
            severity: Severity::Critical,
            outcome: String::new(),
            count: 1,
        }
    }

    fn firing(alerts: u64, at: i64, candidate: Option<&str>) -> Arrival {
        Arrival {
            kind: ArrivalKind::Firing,
            alerts,
            first_at: t(at),
            last_at: t(at),
            log: record(),
            candidate: candidate.map(|id| Box::new(Candidate::unlimited(stub(id, at)))),
        }
    }

    fn stub(id: &str, at: i64) -> Incident {
        let json = serde_json::json!({
            "id": id, "key": "k", "key_parts": [], "policy": "p", "created_at": t(at),
            "alert_count": 1, "last_seen": t(at), "dedup_window_secs": 60,
            "dry_run": true, "notify": [], "steps": [], "journal": [],
            "alert": {"source": "falco", "delivery": "webhook", "severity": "critical", "rule": "r", "summary": "", "time": t(at),
                      "status": "firing", "fields": {}, "tags": [], "resource": {}, "raw": null},
        });
        serde_json::from_value(json).expect("incident")
    }

    fn open(id: &str, count: u64, last: i64) -> Option<Current> {
        Some(Current {
            incident_id: id.into(),
            tally: Tally { alert_count: count, last_seen: t(last), dedup_window_secs: 60, resolved_at: None },
        })
    }

    #[test]
    fn a_run_of_duplicates_is_one_plus_n_on_the_open_incident() {
        let w = admit_key(open("a", 3, 0), &[firing(5, 10, None), firing(2, 20, None)], &mut Quotas::default());
        assert_eq!(
            w.admitted.admitted,
            [
                Admitted::Counted { incident_id: "a".into(), opened: false, first_count: 4, limit_reached: None },
                Admitted::Counted { incident_id: "a".into(), opened: false, first_count: 9, limit_reached: None },
            ]
        );
        assert!(w.opened.is_empty() && !w.admitted.needs_plan);
        let current = w.current.expect("changed");
        assert_eq!((current.tally.alert_count, current.tally.last_seen), (10, t(20)));
        assert_eq!(w.tallies.len(), 1);
        assert_eq!(w.log.iter().map(|l| l.count).sum::<u64>(), 7, "every alert is in the intake log");
    }

    #[test]
    fn without_an_open_incident_the_store_asks_for_a_plan_and_counts_nothing_yet() {
        let w = admit_key(None, &[firing(4, 0, None)], &mut Quotas::default());
        assert!(w.admitted.needs_plan);
        assert!(w.admitted.admitted.is_empty() && w.current.is_none() && w.log.is_empty() && w.tallies.is_empty());
        // An incident past its window does not take them either.
        assert!(admit_key(open("old", 1, 0), &[firing(1, 61, None)], &mut Quotas::default()).admitted.needs_plan);
    }

    #[test]
    fn a_planned_arrival_opens_its_candidate_and_the_rest_of_its_run_are_duplicates() {
        let w = admit_key(None, &[firing(4, 0, Some("new")), firing(3, 1, None)], &mut Quotas::default());
        assert_eq!(w.opened.len(), 1);
        assert_eq!(
            w.admitted.admitted,
            [
                Admitted::Counted { incident_id: "new".into(), opened: true, first_count: 1, limit_reached: None },
                Admitted::Counted { incident_id: "new".into(), opened: false, first_count: 5, limit_reached: None },
            ]
        );
        assert_eq!(w.current.expect("current").tally.alert_count, 7);
        let outcomes: Vec<(u64, &str)> = w.log.iter().map(|l| (l.count, l.outcome.as_str())).collect();
        assert_eq!(outcomes, [(1, "opened new"), (3, "duplicate of new"), (3, "duplicate of new")]);
    }

    #[test]
    fn a_resolution_closes_the_open_incident_and_a_later_alert_opens_another() {
        let arrivals = [
            firing(2, 1, None),
            Arrival { kind: ArrivalKind::Resolved, ..firing(1, 2, None) },
            firing(1, 3, Some("b")),
        ];
        let w = admit_key(open("a", 1, 0), &arrivals, &mut Quotas::default());
        assert_eq!(w.admitted.admitted[1], Admitted::Resolved { incident_id: Some("a".into()) });
        assert_eq!(
            w.admitted.admitted[2],
            Admitted::Counted { incident_id: "b".into(), opened: true, first_count: 1, limit_reached: None }
        );
        // Both tallies are written: the closed one with its final count, the new one current.
        assert_eq!(w.tallies.len(), 2);
        assert_eq!((w.tallies[0].0.as_str(), w.tallies[0].1.alert_count), ("a", 4));
        assert_eq!(w.tallies[0].1.resolved_at, Some(t(2)));
        assert_eq!(w.current.expect("current").incident_id, "b");
    }

    #[test]
    fn a_resolution_without_an_open_incident_changes_nothing_but_the_log() {
        let w =
            admit_key(None, &[Arrival { kind: ArrivalKind::Resolved, ..firing(1, 0, None) }], &mut Quotas::default());
        assert_eq!(w.admitted.admitted, [Admitted::Resolved { incident_id: None }]);
        assert!(w.current.is_none() && w.tallies.is_empty());
        assert_eq!(w.log[0].outcome, "resolved; no open incident");
    }
}
