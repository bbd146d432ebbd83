//! A FAKE Compute Engine v1 REST server, stateful and in-process, for tests named
//! `*_against_fake_compute` and for the benchmarks (Compute Engine has no emulator).
//!
//! It speaks the real wire format (camelCase JSON, int64 as strings, base64 fingerprints, full
//! `https://www.googleapis.com/compute/v1/...` links, Compute's error bodies) for the handful of
//! calls the executor makes, all under `/compute/v1/projects/{p}/`:
//!
//! - instances: `GET zones/{z}/instances/{i}` (by name or id), `GET zones/{z}/instances`,
//!   `GET aggregated/instances` (with a `name = …`/`id = …` filter), `POST …/{i}/setLabels`,
//!   `POST …/{i}/setTags`, `POST …/{i}/deleteAccessConfig`, `DELETE zones/{z}/instances/{i}`;
//! - snapshots: `POST zones/{z}/disks/{d}/createSnapshot` (zonal disk, optional `guestFlush`),
//!   `POST regions/{r}/disks/{d}/createSnapshot` (regional disk; no `guestFlush`: sending it is
//!   refused with 400 as by the real API), `POST global/snapshots` (`snapshots.insert`: a
//!   snapshot in that project of the `sourceDisk` of the body, which may be in another project,
//!   `guestFlush` in the body; a global operation), `GET global/snapshots/{s}` (`status` is
//!   `CREATING` until the operation that creates it is `DONE`, then `READY`);
//! - firewalls: `POST global/firewalls`, `GET global/firewalls/{f}`;
//! - zonal managed instance groups: `GET zones/{z}/instanceGroupManagers/{m}`,
//!   `POST …/{m}/listManagedInstances` (a read: `{"managedInstances": [{"instance", "id",
//!   "instanceStatus", "currentAction", "version"}]}`, the key omitted when the group is empty),
//!   `POST …/{m}/abandonInstances`, `POST …/{m}/deleteInstances` (scheduled with
//!   [`FakeCompute::set_mig_delete_delay`]: the members stay, `DELETING` and `STOPPING`, until it
//!   has passed);
//! - operations, zonal, regional and global: `GET …/operations/{o}`, `POST …/operations/{o}/wait`
//!   (zonal ones carry `zone`, regional ones `region`).
//!
//! Like the real service, effects are applied when the request is accepted (and the operation
//! created), a repeated `requestId` returns the same operation without applying anything again,
//! and a stale fingerprint is refused with 412. Time-driven changes (scheduled group deletions,
//! snapshot status) are applied lazily whenever a request arrives or an accessor is called, never
//! by background timers. On top of that the fake injects faults
//! ([`Faults`], [`FakeCompute::fail_next_operation`], [`FakeCompute::stall_after_effect`]),
//! latency ([`FakeCompute::set_latency`], [`FakeCompute::set_request_latency`]) and forced races
//! ([`FakeCompute::gate`]), and records what happened ([`FakeCompute::effects`],
//! [`FakeCompute::requests`], [`FakeCompute::http_errors`]) for assertions.

mod body;
mod errors;
mod faults;
mod instance;
mod links;
mod mutations;
mod operations;
mod reads;
mod routes;
mod server;
mod snapshot;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use state::State;

/// A running FAKE Compute Engine server on `127.0.0.1` with its state. Clones share the server.
#[derive(Clone)]
pub struct FakeCompute {
    url: String,
    state: Arc<Mutex<State>>,
}

/// An instance to seed the fake with (see [`FakeCompute::add_instance`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Project id.
    pub project: String,
    /// Zone, e.g. `us-central1-a`.
    pub zone: String,
    /// Instance name.
    pub name: String,
    /// Numeric instance id (the API returns it as a JSON string).
    pub id: u64,
    /// Persistent disk names, boot disk first; the zonal disks are created too. The boot disk is
    /// auto-deleted with the instance, the others are not (the console's defaults).
    pub disks: Vec<String>,
    /// Regional persistent disk names, in the instance's region (its zone without the last
    /// `-x`), attached after the zonal ones, not auto-deleted; the disks are created too.
    pub regional_disks: Vec<String>,
    /// Network name, e.g. `default`.
    pub network: String,
    /// One `ONE_TO_ONE_NAT` access config per IP on `nic0`, named `external-nat`,
    /// `external-nat-2`, …
    pub external_ips: Vec<String>,
    /// An external IPv6 address on `nic0`, which makes the interface dual-stack (`IPV4_IPV6`, with
    /// an `ipv6AccessConfigs` entry `external-ipv6`).
    pub external_ipv6: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Network tags.
    pub tags: Vec<String>,
    /// Zonal managed instance group the instance belongs to: sets the `created-by` metadata and
    /// creates the group (or adds the instance to it).
    pub mig: Option<String>,
}

impl InstanceSpec {
    /// An instance with one boot disk named like it, no regional disk, on network `default`, with
    /// one external IP `34.0.0.1`, no labels, no tags and no group.
    pub fn new(project: &str, zone: &str, name: &str, id: u64) -> InstanceSpec {
        InstanceSpec {
            project: project.to_owned(),
            zone: zone.to_owned(),
            name: name.to_owned(),
            id,
            disks: vec![name.to_owned()],
            regional_disks: Vec::new(),
            network: "default".to_owned(),
            external_ips: vec!["34.0.0.1".to_owned()],
            external_ipv6: None,
            labels: BTreeMap::new(),
            tags: Vec::new(),
            mig: None,
        }
    }
}

/// Random faults, drawn from a xorshift generator seeded with `seed` (deterministic per seed
/// for a given sequence of requests). The default injects nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability that any request (read, wait or mutation) is refused before any processing,
    /// half the time with 429 `rateLimitExceeded`, half with 503 `backendError`.
    pub reject_rate: f64,
    /// Probability that a mutation that succeeded (effect applied, operation created) is
    /// answered 503 `backendError` anyway, as if the response were lost on the way back.
    pub lost_response_rate: f64,
    /// Seed of the generator.
    pub seed: u64,
}

/// An effect the fake actually applied (one per accepted, non-failed, non-replayed mutation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    /// The operation type: `insert`, `setLabels`, `setTags`, `createSnapshot`,
    /// `deleteAccessConfig`, `delete`, `abandonInstances` or `deleteInstances`.
    pub op_type: String,
    /// The request's `requestId`, if it had one.
    pub request_id: Option<String>,
    /// The operation's target as a resource path (its `targetLink` without the API prefix), e.g.
    /// `projects/p/zones/z/instances/i`; the disk for `createSnapshot` (`projects/p/zones/z/disks/d`
    /// or `projects/p/regions/r/disks/d`), the group for
    /// `abandonInstances`/`deleteInstances`, the rule for a firewall `insert`.
    pub target: String,
}

/// A request the fake received (every one, including those it then refused).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path, as sent (not percent-decoded), e.g. `/compute/v1/projects/p/zones/z/instances/i`.
    pub path: String,
    /// Raw query string without `?` (empty when none).
    pub query: String,
    /// The body, when it was present and valid JSON.
    pub body: Option<Value>,
}

impl FakeCompute {
    /// Starts the fake on `127.0.0.1:0`; the server task lives as long as the tokio runtime.
    pub async fn start() -> FakeCompute {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake on 127.0.0.1:0");
        let addr = listener.local_addr().expect("the fake's local address");
        let state = Arc::new(Mutex::new(State::default()));
        let router = server::router(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeCompute { url: format!("http://{addr}"), state }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (the client appends `/compute/v1/...`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Adds (or replaces) an instance, its disks and, if it has one, its group membership.
    pub fn add_instance(&self, spec: InstanceSpec) {
        self.lock().add_instance(spec);
    }

    /// Adds a pre-existing firewall rule (a `Firewall` resource; `name` is required). Missing
    /// output fields (`kind`, `id`, `selfLink`, …) and defaults are filled in as on insert.
    pub fn add_firewall(&self, project: &str, firewall: Value) {
        let mut state = self.lock();
        let firewall = state.complete_firewall(project, firewall);
        let name =
            firewall.get("name").and_then(Value::as_str).expect("add_firewall: the rule needs a name").to_owned();
        state.firewalls.insert((project.to_owned(), name), firewall);
    }

    /// Sets the random faults (and reseeds the generator).
    pub fn set_faults(&self, faults: Faults) {
        self.lock().set_faults(faults);
    }

    /// How long operations of `op_type` created from now on stay `RUNNING` (default zero: they
    /// are `DONE` at once).
    pub fn set_latency(&self, op_type: &str, latency: Duration) {
        self.lock().latencies.insert(op_type.to_owned(), latency);
    }

    /// How long after a group's `deleteInstances` request its members are actually deleted
    /// (default zero: at once). Meanwhile each stays a member, listed by `listManagedInstances`
    /// with `currentAction: DELETING` and `instanceStatus: STOPPING`, and the instance is
    /// `STOPPING`; the group's target size shrinks at once, the operation (latency from
    /// [`FakeCompute::set_latency`]`("deleteInstances", …)`) and the [`Effect`] are created at
    /// request time as without a delay. Applies to requests accepted from now on.
    pub fn set_mig_delete_delay(&self, delay: Duration) {
        self.lock().mig_delete_delay = delay;
    }

    /// A delay added before every HTTP response.
    pub fn set_request_latency(&self, latency: Duration) {
        self.lock().request_latency = latency;
    }

    /// One-shot (calls queue up): the next operation of `op_type` the fake accepts finishes
    /// `DONE` with `error: {errors: [{code, message}]}` (`httpErrorStatusCode` 400) and its
    /// effect is NOT applied. Requests refused synchronously (404, 412, …) do not consume it.
    pub fn fail_next_operation(&self, op_type: &str, code: &str, message: &str) {
        self.lock().failures.entry(op_type.to_owned()).or_default().push_back((code.to_owned(), message.to_owned()));
    }

    /// One-shot (calls add up): the next request of `op_type` that creates an operation applies
    /// its effect and then never answers (the caller died after sending, or the connection hung).
    pub fn stall_after_effect(&self, op_type: &str) {
        *self.lock().stalls.entry(op_type.to_owned()).or_default() += 1;
    }

    /// The next `n` mutations of `op_type` (counted after random rejections) wait until all `n`
    /// have arrived, then are processed one at a time in arrival order: forces races
    /// deterministically. Replaces any earlier gate of that type.
    pub fn gate(&self, op_type: &str, n: usize) {
        self.lock().gates.insert(op_type.to_owned(), Arc::new(faults::Gate::new(n)));
    }

    /// Adds (or replaces) a snapshot named `name` of `source_disk_url` (a disk link, zonal or
    /// regional; a resource path works too) with `status` (e.g. `CREATING`, `READY`, `FAILED`),
    /// which it keeps. A later `createSnapshot` of that name gets 409 `alreadyExists`.
    pub fn add_snapshot(&self, project: &str, name: &str, source_disk_url: &str, status: &str) {
        self.lock().add_snapshot(project, name, source_disk_url, status);
    }

    /// The instance's JSON as `GET` returns it, or `None` when it does not exist.
    pub fn instance(&self, project: &str, zone: &str, name: &str) -> Option<Value> {
        let state = self.lock();
        state.instances.get(&state::key3(project, zone, name)).map(instance::Instance::to_json)
    }

    /// The firewall rule's JSON as `GET` returns it, or `None`.
    pub fn firewall(&self, project: &str, name: &str) -> Option<Value> {
        self.lock().firewalls.get(&(project.to_owned(), name.to_owned())).cloned()
    }

    /// Every snapshot created or added, in creation order, as `GET` returns them now (with
    /// `status`, `sourceDisk`, `labels`, …).
    pub fn snapshots(&self) -> Vec<Value> {
        let now = Instant::now();
        self.lock().snapshots.iter().map(|s| s.to_json(now)).collect()
    }

    /// The managed instance group's JSON as `GET` returns it, or `None`.
    pub fn mig(&self, project: &str, zone: &str, name: &str) -> Option<Value> {
        self.lock().mig_json(project, zone, name)
    }

    /// The names of the group's current members (not part of the API's group resource; those
    /// being deleted included until they are gone), or `None` when the group does not exist.
    pub fn mig_members(&self, project: &str, zone: &str, name: &str) -> Option<Vec<String>> {
        let state = self.lock();
        state.migs.get(&state::key3(project, zone, name)).map(|m| m.members.iter().cloned().collect())
    }

    /// Every effect actually applied, in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.lock().effects.clone()
    }

    /// Every requestId that came again and got its existing operation back (no second effect),
    /// in order.
    pub fn replays(&self) -> Vec<String> {
        self.lock().replays.clone()
    }

    /// How many responses with `status` were sent (any status, e.g. 200, 404, 409, 412, 429,
    /// 503); responses still pending or never sent (stalled) are not counted.
    pub fn http_errors(&self, status: u16) -> usize {
        self.lock().statuses.get(&status).copied().unwrap_or(0)
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock_current(&self.state)
    }
}

/// Locks the state and applies what is due by now (scheduled deletions).
fn lock_current(state: &Mutex<State>) -> MutexGuard<'_, State> {
    let mut guard = lock(state);
    guard.purge(Instant::now());
    guard
}

/// Locks the state, ignoring poisoning (a panicking test thread must not cascade).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
