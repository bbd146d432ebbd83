//! Everything the fake knows: resources, operations, request ids, fault settings and records.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::body::default_field;
use super::errors::ApiError;
use super::faults::{Gate, Turn, XorShift};
use super::instance::{AccessConfig, Disk, Instance, Mig, created_by};
use super::links::{self, Scope, fingerprint, link, network_link, region_of, zonal};
use super::operations::Operation;
use super::snapshot::Snapshot;
use super::{Effect, Faults, InstanceSpec, RecordedRequest};

/// `(project, zone, name)`, or `(project, region, name)` for a regional resource.
pub(crate) type Key3 = (String, String, String);

/// The key of a zonal resource.
pub(crate) fn key3(project: &str, zone: &str, name: &str) -> Key3 {
    (project.to_owned(), zone.to_owned(), name.to_owned())
}

/// Ids of operations start here (they look like real ones, 19 digits).
const OPERATION_ID_BASE: u64 = 7_000_000_000_000_000_000;

/// The fake's whole state, behind one mutex (never held across an `.await`).
#[derive(Debug)]
pub(crate) struct State {
    pub instances: BTreeMap<Key3, Instance>,
    pub disks: BTreeMap<Key3, Disk>,
    /// By `(project, region, name)`.
    pub regional_disks: BTreeMap<Key3, Disk>,
    pub migs: BTreeMap<Key3, Mig>,
    /// `(project, name)` → the rule's JSON.
    pub firewalls: BTreeMap<(String, String), Value>,
    /// In creation order.
    pub snapshots: Vec<Snapshot>,
    /// Operation path → operation.
    pub operations: BTreeMap<String, Operation>,
    /// `requestId` → operation path.
    pub request_ids: HashMap<String, String>,

    pub faults: Faults,
    pub rng: XorShift,
    pub latencies: HashMap<String, Duration>,
    pub request_latency: Duration,
    /// How long after a group's `deleteInstances` its members are actually deleted.
    pub mig_delete_delay: Duration,
    pub failures: HashMap<String, VecDeque<(String, String)>>,
    pub stalls: HashMap<String, usize>,
    pub gates: HashMap<String, Arc<Gate>>,

    pub effects: Vec<Effect>,
    /// requestIds sent again and answered with their existing operation (no new effect).
    pub replays: Vec<String>,
    pub requests: Vec<RecordedRequest>,
    pub statuses: BTreeMap<u16, usize>,
    /// Source of ids and fingerprints.
    counter: u64,
    /// Source of operation name suffixes (separate from the fault generator, so faults depend
    /// only on the seed and the requests).
    names: XorShift,
}

impl Default for State {
    fn default() -> State {
        State {
            instances: BTreeMap::new(),
            disks: BTreeMap::new(),
            regional_disks: BTreeMap::new(),
            migs: BTreeMap::new(),
            firewalls: BTreeMap::new(),
            snapshots: Vec::new(),
            operations: BTreeMap::new(),
            request_ids: HashMap::new(),
            faults: Faults::default(),
            rng: XorShift::new(0),
            latencies: HashMap::new(),
            request_latency: Duration::ZERO,
            mig_delete_delay: Duration::ZERO,
            failures: HashMap::new(),
            stalls: HashMap::new(),
            gates: HashMap::new(),
            effects: Vec::new(),
            replays: Vec::new(),
            requests: Vec::new(),
            statuses: BTreeMap::new(),
            counter: 0,
            names: XorShift::new(0x0C0_FFEE),
        }
    }
}

/// What an accepted mutation answers.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The operation's JSON.
    pub op: Value,
    /// Whether to never answer (see `stall_after_effect`).
    pub stall: bool,
}

impl State {
    /// A fresh number (ids, fingerprints).
    pub fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A fresh fingerprint.
    pub fn fingerprint(&mut self) -> String {
        let n = self.next();
        fingerprint(n)
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        self.rng = XorShift::new(faults.seed);
    }

    /// A random rejection (429 or 503) for a request about to be processed, per `reject_rate`.
    pub fn roll_reject(&mut self) -> Option<ApiError> {
        if !self.rng.chance(self.faults.reject_rate) {
            return None;
        }
        Some(if self.rng.next_u64() & 1 == 0 { ApiError::rate_limited() } else { ApiError::backend_error() })
    }

    /// Whether to lose a mutation's response, per `lost_response_rate`.
    pub fn roll_lost(&mut self) -> bool {
        self.rng.chance(self.faults.lost_response_rate)
    }

    /// A place in the gate of `op_type`, while it holds requests.
    pub fn gate_turn(&mut self, op_type: &str) -> Option<Turn> {
        self.gates.get(op_type).and_then(Gate::admit)
    }

    pub fn add_instance(&mut self, spec: InstanceSpec) {
        let InstanceSpec {
            project,
            zone,
            name,
            id,
            disks,
            regional_disks,
            network,
            external_ips,
            external_ipv6,
            labels,
            tags,
            mig,
        } = spec;
        for disk in &disks {
            let id = self.next();
            self.disks.entry(key3(&project, &zone, disk)).or_insert(Disk { id: 1_000_000 + id });
        }
        for disk in &regional_disks {
            let id = self.next();
            self.regional_disks.entry(key3(&project, region_of(&zone), disk)).or_insert(Disk { id: 1_000_000 + id });
        }
        let created_by = mig.as_ref().map(|mig| {
            let (id, fingerprint, created) = (self.next(), self.fingerprint(), links::now());
            let group = self.migs.entry(key3(&project, &zone, mig)).or_insert_with(|| Mig {
                id: 2_000_000 + id,
                created,
                fingerprint,
                members: Default::default(),
                target_size: 0,
            });
            if group.members.insert(name.clone()) {
                group.target_size += 1;
            }
            created_by(&zone, mig)
        });
        let access_configs = external_ips
            .into_iter()
            .enumerate()
            .map(|(i, nat_ip)| AccessConfig {
                name: if i == 0 { "external-nat".to_owned() } else { format!("external-nat-{}", i + 1) },
                nat_ip,
            })
            .collect();
        let instance = Instance {
            network_ip: format!("10.128.0.{}", 2 + self.instances.len() % 250),
            nic_fingerprint: self.fingerprint(),
            label_fingerprint: self.fingerprint(),
            tags_fingerprint: self.fingerprint(),
            metadata_fingerprint: self.fingerprint(),
            created: links::now(),
            project,
            zone,
            name,
            id,
            disks,
            regional_disks,
            network,
            access_configs,
            external_ipv6,
            labels,
            tags,
            created_by,
            deleted_at: None,
        };
        self.instances.insert(key3(&instance.project, &instance.zone, &instance.name), instance);
    }

    /// The key of an instance addressed by name or numeric id, or 404.
    pub fn resolve_instance(&self, project: &str, zone: &str, name_or_id: &str) -> Result<Key3, ApiError> {
        let key = if !name_or_id.is_empty() && name_or_id.bytes().all(|b| b.is_ascii_digit()) {
            self.instances
                .values()
                .find(|i| i.project == project && i.zone == zone && i.id.to_string() == name_or_id)
                .map(|i| key3(project, zone, &i.name))
        } else {
            Some(key3(project, zone, name_or_id)).filter(|k| self.instances.contains_key(k))
        };
        key.ok_or_else(|| ApiError::not_found(&zonal(project, zone, "instances", name_or_id)))
    }

    /// Deletes an instance, its auto-delete disks and its group membership (the target size
    /// shrinks, unless a scheduled deletion already shrank it).
    pub fn delete_instance(&mut self, key: &Key3) {
        let Some(instance) = self.instances.remove(key) else { return };
        for (index, disk) in instance.disks.iter().enumerate() {
            if Instance::auto_delete(index) {
                self.disks.remove(&key3(&instance.project, &instance.zone, disk));
            }
        }
        let scheduled = instance.deleted_at.is_some();
        for ((project, zone, _), mig) in self.migs.iter_mut() {
            if *project == instance.project
                && *zone == instance.zone
                && mig.members.remove(&instance.name)
                && !scheduled
            {
                mig.target_size -= 1;
            }
        }
    }

    /// Deletes the instances whose scheduled deletion is due at `now` (called before anything
    /// looks at the state, so the timing is lazy and deterministic).
    pub fn purge(&mut self, now: Instant) {
        let due: Vec<Key3> = self
            .instances
            .iter()
            .filter(|(_, i)| i.deleted_at.is_some_and(|at| at <= now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &due {
            self.delete_instance(key);
        }
    }

    /// The group's JSON as `instanceGroupManagers.get` returns it, or `None`.
    pub fn mig_json(&self, project: &str, zone: &str, name: &str) -> Option<Value> {
        let mig = self.migs.get(&key3(project, zone, name))?;
        let deleting = mig
            .members
            .iter()
            .filter(|m| self.instances.get(&key3(project, zone, m)).is_some_and(|i| i.deleted_at.is_some()))
            .count();
        Some(mig.to_json(project, zone, name, deleting))
    }

    /// A firewall rule with the output fields and defaults Compute adds on insert.
    pub fn complete_firewall(&mut self, project: &str, mut firewall: Value) -> Value {
        let id = self.next();
        if let Some(rule) = firewall.as_object_mut() {
            let name = rule.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let network = rule.get("network").and_then(Value::as_str).unwrap_or("default").to_owned();
            rule.insert("network".to_owned(), json!(network_link(project, &network)));
            default_field(rule, "kind", json!("compute#firewall"));
            default_field(rule, "id", json!((3_000_000 + id).to_string()));
            default_field(rule, "selfLink", json!(link(&links::global(project, "firewalls", &name))));
            default_field(rule, "creationTimestamp", json!(links::now()));
            default_field(rule, "priority", json!(1000));
            default_field(rule, "direction", json!("INGRESS"));
            default_field(rule, "disabled", json!(false));
        }
        firewall
    }

    /// The operation a `requestId` already created, as it is now.
    pub fn replay(&self, request_id: Option<&str>) -> Option<Value> {
        let path = self.request_ids.get(request_id?)?;
        self.operations.get(path).map(|op| op.to_json(Instant::now()))
    }

    /// Creates the operation of an accepted mutation and, unless a failure was queued for its
    /// type, applies `effect` and records it.
    pub fn accept(&mut self, op: NewOperation<'_>, effect: impl FnOnce(&mut State)) -> Outcome {
        let failure = self.failures.get_mut(op.op_type).and_then(VecDeque::pop_front);
        if failure.is_none() {
            effect(self);
            self.effects.push(Effect {
                op_type: op.op_type.to_owned(),
                request_id: op.request_id.map(str::to_owned),
                target: op.target.clone(),
            });
        }
        let stall = match self.stalls.get_mut(op.op_type) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        let n = self.next();
        let operation = Operation {
            id: OPERATION_ID_BASE + n,
            name: format!("operation-{n}-{:013x}", self.names.next_u64() >> 12),
            op_type: op.op_type.to_owned(),
            project: op.project.to_owned(),
            scope: op.scope,
            target: op.target,
            target_id: op.target_id,
            insert_time: jiff::Timestamp::now(),
            inserted_at: Instant::now(),
            latency: self.latencies.get(op.op_type).copied().unwrap_or_default(),
            error: failure,
        };
        let path = operation.path();
        let json = operation.to_json(Instant::now());
        if let Some(request_id) = op.request_id {
            self.request_ids.insert(request_id.to_owned(), path.clone());
        }
        self.operations.insert(path, operation);
        Outcome { op: json, stall }
    }
}

/// The operation an accepted mutation creates.
#[derive(Debug)]
pub(crate) struct NewOperation<'a> {
    pub op_type: &'static str,
    pub request_id: Option<&'a str>,
    pub project: &'a str,
    /// Global, zonal or regional operation.
    pub scope: Scope,
    /// Target resource path.
    pub target: String,
    pub target_id: Option<u64>,
}
