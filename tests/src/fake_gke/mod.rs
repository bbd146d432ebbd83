//! A FAKE Google Kubernetes Engine: the Container API's `clusters.get` (plain HTTP) and one
//! cluster's kube-apiserver (HTTPS, self-signed certificate), stateful and in-process, for tests
//! named `*_against_fake_gke` (GKE has no emulator, and a kind/k3s cluster is too heavy here).
//!
//! The Container API serves `GET /v1/projects/{p}/locations/{l}/clusters/{c}` (and the legacy
//! `…/zones/{z}/clusters/{c}`), query parameters ignored, answering the `Cluster` with its
//! `endpoint`, `masterAuth.clusterCaCertificate` (base64 of [`FakeGke::ca_pem`]) and
//! `privateClusterConfig`; an unknown cluster gets Google's 404 JSON.
//!
//! The kube-apiserver speaks the real wire format (objects with `apiVersion`, `kind` and
//! `metadata`, errors as `Status` objects with the real reasons and messages) for:
//!
//! - nodes: `GET /api/v1/nodes`, `GET`/`PATCH /api/v1/nodes/{n}`;
//! - pods: `GET /api/v1/pods` and `GET /api/v1/namespaces/{ns}/pods` (with `fieldSelector` on
//!   `metadata.name`, `metadata.namespace`, `spec.nodeName`, `spec.restartPolicy`,
//!   `spec.schedulerName`, `spec.serviceAccountName`, `status.phase`, and `labelSelector`; any
//!   other field is refused with 400; `limit` is accepted and everything comes in one page),
//!   `GET`/`PATCH`/`DELETE /api/v1/namespaces/{ns}/pods/{p}`,
//!   `POST /api/v1/namespaces/{ns}/pods/{p}/eviction`;
//! - network policies: `GET`/`POST /apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies`,
//!   `GET`/`DELETE …/networkpolicies/{n}`;
//! - workloads: `GET`/`DELETE /apis/apps/v1/namespaces/{ns}/{deployments|replicasets|statefulsets|daemonsets}/{n}`,
//!   `GET`/`DELETE /apis/batch/v1/namespaces/{ns}/{jobs|cronjobs}/{n}` (and their lists);
//! - events: `GET /api/v1/events`, `GET /api/v1/namespaces/{ns}/events` (with `fieldSelector`
//!   on `involvedObject.kind|name|namespace|uid`, `reason`, `type`), `GET …/events/{e}`;
//! - logs: `GET /api/v1/namespaces/{ns}/pods/{p}/log` (`container`, `previous`, `limitBytes`;
//!   answered as `text/plain`), set with [`FakeGke::set_container_logs`];
//! - `GET /version`.
//!
//! Any other path is 404 `NotFound`, any other method on a known path 405 (`PUT` included, and
//! `PATCH` of anything but nodes and pods, `DELETE` of nodes). Every request needs an accepted
//! bearer token (401 otherwise). Mutations take `?dryRun=All` (evictions and deletions also
//! `dryRun: ["All"]` in their options): full validation and the would-be answer, no change.
//!
//! Semantics worth knowing (all as the real server, except where marked FAKE):
//!
//! - `resourceVersion` is one global counter, bumped by every change; a patch that changes
//!   nothing keeps it (and is still answered 200 and listed by [`FakeGke::mutations`]).
//! - `PATCH` takes `application/merge-patch+json` (RFC 7386), `application/strategic-merge-patch+json`
//!   (FAKE: treated as a merge patch, lists replaced whole; `$patch`-style directives are refused
//!   with 400), `application/json-patch+json` (RFC 6902: add, remove, replace, move, copy, test)
//!   and `application/apply-patch+yaml` (FAKE: the body must be JSON, needs `fieldManager`, and
//!   is applied as a merge patch; no field ownership); anything else is 415. A `metadata.uid` or
//!   `metadata.resourceVersion` that the patch sets and that differs from the object's is a 409
//!   precondition failure; label and annotation keys and label values are validated (422);
//!   status changes are ignored (status is a subresource); a pod's `spec` cannot change (422,
//!   FAKE: not even the image); a node's `spec.providerID` cannot change (422).
//! - Deleting (and evicting) a pod removes it at once (FAKE: as if the kubelet confirmed at
//!   once); with a grace period above zero the answer shows `deletionTimestamp` and
//!   `deletionGracePeriodSeconds` as the real server's does. Options come from the JSON body
//!   when there is one, else from the query (`gracePeriodSeconds`, `propagationPolicy`,
//!   `dryRun`, `orphanDependents`): as with the real server, `?dryRun=All` next to a body is
//!   ignored and the object really goes.
//! - Deleting an object cascades like the garbage collector: with `Background` or `Foreground`
//!   every object (workload or pod) with an ownerReference to a deleted uid loses it and, when
//!   no owner of it is left, is deleted too, recursively; with `Orphan` dependents only lose the
//!   reference. The default policy is `Background`, except for `batch/v1` Jobs: `Orphan` (as the
//!   real server: deleting a Job without a policy leaves its pods). Deleted workloads and network
//!   policies are answered with a `Status` `Success` (`Background`) or with the object carrying
//!   `deletionTimestamp` and the finalizer `foregroundDeletion` (`Foreground`) or `orphan`
//!   (`Orphan`); the object is gone from the store at once either way (FAKE: the real one waits
//!   for the garbage collector). Pods are always answered with the pod.
//! - FAKE: no controllers run: nothing recreates an evicted or deleted pod unless a test calls
//!   [`FakeGke::recreate_pod`], nodes are not tainted when cordoned, no PodDisruptionBudget
//!   exists but the ones [`FakeGke::block_eviction`] simulates.
//! - Errors the brief fixed where the real server differs: an unknown `dryRun` value and an
//!   unknown `propagationPolicy` are 400 `BadRequest` (the real server answers 422 `Invalid`
//!   about `…Options.meta.k8s.io`).
//!
//! The kube-apiserver serves HTTP/1.1 and HTTP/2 (ALPN `h2`, `http/1.1`) with TLS 1.3 only, on a
//! certificate generated at start for `127.0.0.1` (IP SAN) and `localhost`: a client must trust
//! [`FakeGke::ca_pem`] (the certificate itself) and connect to `https://{apiserver_endpoint}`.

mod apiserver;
mod container;
mod logs;
mod objects;
mod options;
mod patch;
mod reads;
mod routes;
mod selectors;
mod state;
mod status;
#[cfg(test)]
mod tests;
mod tls;
mod validation;
mod writes;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;

use routes::Resource;
use state::{Failure, State};

/// What [`FakeGke::set_private_only`] makes the public `endpoint` (and, when the cluster is not
/// private, `privateClusterConfig.privateEndpoint`): a loopback port where nothing listens, so a
/// client that uses it gets "connection refused" at once and no traffic leaves the machine.
pub const UNREACHABLE_ENDPOINT: &str = "127.0.0.1:1";

/// A running FAKE GKE (Container API and one cluster's kube-apiserver on `127.0.0.1`) with its
/// state. Clones share the servers, which live as long as the tokio runtime that started them.
#[derive(Clone)]
pub struct FakeGke {
    container: String,
    apiserver: String,
    ca_pem: String,
    state: Arc<Mutex<State>>,
}

/// A request either server received.
#[derive(Clone, Debug, PartialEq)]
pub struct KubeRequest {
    /// HTTP method, e.g. `PATCH`.
    pub method: String,
    /// Path as sent (not percent-decoded), e.g. `/api/v1/namespaces/default/pods/web-1`.
    pub path: String,
    /// Raw query string without `?` (empty when none).
    pub query: String,
    /// The `Content-Type` header, when sent.
    pub content_type: Option<String>,
    /// The body, when it was present and valid JSON.
    pub body: Option<Value>,
    /// Whether the request asked for a dry run (`dryRun=All` in the query, or `dryRun: ["All"]`
    /// in an eviction's or deletion's options).
    pub dry_run: bool,
    /// The HTTP status answered (0 while the request is still being processed).
    pub status: u16,
}

impl KubeRequest {
    /// Whether it changed (or, for a patch that changed nothing, was accepted to change) the
    /// cluster's state: a `POST`, `PUT`, `PATCH` or `DELETE` answered 2xx and not a dry run.
    pub fn is_mutation(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
            && (200..300).contains(&self.status)
            && !self.dry_run
    }
}

/// A node to seed the cluster with (see [`FakeGke::add_node`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name, e.g. `gke-prod-pool-1-abcd`.
    pub name: String,
    /// `spec.providerID`, e.g. `gce://project/zone/instance`.
    pub provider_id: String,
    /// Labels (exactly these: the fake adds none).
    pub labels: BTreeMap<String, String>,
    /// Cordoned already.
    pub unschedulable: bool,
    /// Annotations (e.g. the owners' own scale-down protection).
    pub annotations: BTreeMap<String, String>,
}

/// A pod to seed the cluster with (see [`FakeGke::add_pod`]): `Running` on `node`, one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSpec {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// `spec.nodeName` (empty: not scheduled).
    pub node: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `(kind, name)` of the controller ownerReference, e.g. `("ReplicaSet", "web-7d4b9c")`; its
    /// uid is the stored workload's when one of that kind and name exists in the namespace (add
    /// workloads first), a random one otherwise. Kind `Node` (a mirror pod's owner) refers to the
    /// node of that name.
    pub owner: Option<(String, String)>,
    /// A static pod's mirror: annotation `kubernetes.io/config.mirror`.
    pub mirror: bool,
}

/// A container's logs (see [`FakeGke::set_container_logs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerLogs {
    /// The container's name.
    pub container: String,
    /// What the running instance logged.
    pub current: String,
    /// What the previous (terminated) instance logged, if the container restarted.
    pub previous: Option<String>,
    /// The container has not started: waiting for this reason (`ImagePullBackOff`, …); its
    /// current log is refused as the kubelet refuses it.
    pub waiting: Option<String>,
}

/// An event to record (see [`FakeGke::add_event`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventSpec {
    /// Where the event is kept: the object's namespace, `default` for a node's.
    pub namespace: String,
    /// `Pod` or `Node`.
    pub object_kind: String,
    /// The object's name.
    pub object_name: String,
    /// `BackOff`, `NodeNotReady`, …
    pub reason: String,
    /// What happened.
    pub message: String,
    /// `Normal` or `Warning`.
    pub event_type: String,
}

/// A workload to seed the cluster with (see [`FakeGke::add_workload`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// `Deployment`, `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job` or `CronJob`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `(kind, name)` of the controller ownerReference, e.g. `("Deployment", "web")`, resolved
    /// as for [`PodSpec::owner`].
    pub owner: Option<(String, String)>,
}

/// Why an object left the store (see [`FakeGke::deletions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionCause {
    /// `POST …/pods/{p}/eviction`.
    Eviction,
    /// A `DELETE` of the object itself.
    Delete,
    /// The garbage collector, after its owner was deleted.
    GarbageCollector,
}

/// An object the API deleted (not [`FakeGke::recreate_pod`]'s replacement, not dry runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Namespace (empty for nodes).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The deleted object's uid.
    pub uid: String,
    /// The grace period the request asked for (`None`: the pod's default, 30 s; always `None`
    /// for garbage-collected objects).
    pub grace_period_seconds: Option<i64>,
    /// What deleted it.
    pub cause: DeletionCause,
}

impl FakeGke {
    /// Starts the Container API (plain HTTP on `127.0.0.1:0`) and one cluster's kube-apiserver
    /// (HTTPS on `127.0.0.1:0`, certificate generated now), registered as
    /// `projects/{project}/locations/{location}/clusters/{cluster}`. Accepts bearer token
    /// `test-token`; the cluster is empty.
    pub async fn start(project: &str, location: &str, cluster: &str) -> FakeGke {
        let tls = tls::self_signed();
        let kube = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake apiserver on 127.0.0.1:0");
        let apiserver = kube.local_addr().expect("the fake apiserver's local address").to_string();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Container API");
        let container = format!("http://{}", http.local_addr().expect("the fake Container API's local address"));
        let state = State::new(state::Cluster {
            project: project.to_owned(),
            location: location.to_owned(),
            name: cluster.to_owned(),
            apiserver: apiserver.clone(),
            ca_pem: tls.ca_pem.clone(),
        });
        let state = Arc::new(Mutex::new(state));
        tokio::spawn(tls::serve(kube, tls.acceptor, apiserver::router(state.clone())));
        let router = container::router(state.clone());
        tokio::spawn(async move { axum::serve(http, router).await });
        FakeGke { container, apiserver, ca_pem: tls.ca_pem, state }
    }

    /// Root URL of the Container API, e.g. `http://127.0.0.1:41234` (the client appends
    /// `/v1/projects/…`).
    pub fn container_endpoint(&self) -> String {
        self.container.clone()
    }

    /// The kube-apiserver's address, `127.0.0.1:PORT`, as `clusters.get` reports it in
    /// `endpoint`: connect to `https://{apiserver_endpoint}`.
    pub fn apiserver_endpoint(&self) -> String {
        self.apiserver.clone()
    }

    /// The kube-apiserver's certificate (self-signed, so also its CA), PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// On: `clusters.get` reports the apiserver only as the private endpoint: `endpoint` becomes
    /// [`UNREACHABLE_ENDPOINT`], `privateClusterConfig.enablePrivateEndpoint` true and
    /// `privateClusterConfig.privateEndpoint` [`FakeGke::apiserver_endpoint`]. Off (the start):
    /// `endpoint` is the apiserver, `enablePrivateEndpoint` false and `privateEndpoint`
    /// [`UNREACHABLE_ENDPOINT`] (as a real public cluster's private endpoint, unreachable from
    /// outside its VPC).
    pub fn set_private_only(&self, on: bool) {
        self.lock().private_only = on;
    }

    /// Replaces the bearer tokens the apiserver accepts (initially `test-token`); a request
    /// without one of them gets 401 `Unauthorized` and has no effect.
    pub fn set_tokens(&self, tokens: &[&str]) {
        self.lock().tokens = tokens.iter().map(|t| (*t).to_owned()).collect();
    }

    /// The bearer tokens presented to the apiserver (accepted or not), in order, consecutive
    /// repeats collapsed.
    pub fn tokens_seen(&self) -> Vec<String> {
        self.lock().tokens_seen.clone()
    }

    /// Adds (or replaces, with a new uid) a node; returns its uid.
    pub fn add_node(&self, spec: NodeSpec) -> String {
        self.lock().add_node(&spec)
    }

    /// Adds (or replaces, with a new uid) a pod; returns its uid.
    pub fn add_pod(&self, spec: PodSpec) -> String {
        self.lock().add_pod(spec)
    }

    /// Adds (or replaces, with a new uid) a workload; returns its uid. Panics on an unknown kind.
    pub fn add_workload(&self, spec: WorkloadSpec) -> String {
        self.lock().add_workload(&spec)
    }

    /// Adds (or replaces) a network policy as if created by `POST` (`metadata.name` required,
    /// the namespace and server fields filled in); returns its uid. Panics if it is invalid.
    pub fn add_network_policy(&self, namespace: &str, policy: Value) -> String {
        self.lock().add_network_policy(namespace, policy)
    }

    /// Deletes the pod (if it is still there) and creates a new one with the same namespace,
    /// name and [`PodSpec`] as the last [`FakeGke::add_pod`] of that name (changes made through
    /// the API are not carried over) but a new uid, which it returns; as a StatefulSet's
    /// controller would. Panics if no such pod was ever added.
    pub fn recreate_pod(&self, namespace: &str, name: &str) -> String {
        self.lock().recreate_pod(namespace, name)
    }

    /// Evictions of this pod (whatever its uid) answer 429 `TooManyRequests` (a
    /// PodDisruptionBudget `web-pdb` would be violated) `times` times (`None`: always), then go
    /// through. Dry-run evictions are refused while blocked but use up no count.
    pub fn block_eviction(&self, namespace: &str, name: &str, times: Option<u32>) {
        self.lock().blocked.insert((namespace.to_owned(), name.to_owned()), times);
    }

    /// The next `count` requests (to either server, after the apiserver's token check) whose
    /// method is `method` and whose path starts with `path_prefix` answer `status` without
    /// effect: the apiserver with a `Status` (429 also with `Retry-After: 1`), the Container API
    /// (prefixes starting with `/v1/`) with Google's error JSON (429 `RESOURCE_EXHAUSTED`, 503
    /// `UNAVAILABLE`, …). Calls queue up; the oldest matching one is used first.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, count: u32) {
        self.lock().failures.push(Failure {
            method: method.to_owned(),
            prefix: path_prefix.to_owned(),
            status,
            remaining: count,
        });
    }

    /// Gives pod `namespace/name` a container with logs (see [`ContainerLogs`]). Panics if the
    /// pod does not exist.
    pub fn set_container_logs(&self, namespace: &str, name: &str, logs: ContainerLogs) {
        self.lock().set_container_logs(namespace, name, logs);
    }

    /// Records an event; returns its name.
    pub fn add_event(&self, spec: EventSpec) -> String {
        self.lock().add_event(spec)
    }

    /// A delay before the apiserver processes each request (default zero).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The pod as `GET` returns it, or `None`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.lock().object(Resource::Pod, namespace, name)
    }

    /// The node as `GET` returns it, or `None`.
    pub fn node(&self, name: &str) -> Option<Value> {
        self.lock().object(Resource::Node, "", name)
    }

    /// The network policy as `GET` returns it, or `None`.
    pub fn network_policy(&self, namespace: &str, name: &str) -> Option<Value> {
        self.lock().object(Resource::NetworkPolicy, namespace, name)
    }

    /// The workload (`kind`: `Deployment`, `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job` or
    /// `CronJob`) as `GET` returns it, or `None` (also for an unknown kind).
    pub fn workload(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let resource = Resource::from_kind(kind).filter(|r| r.is_workload())?;
        self.lock().object(resource, namespace, name)
    }

    /// `(namespace, name)` of the pods whose `spec.nodeName` is `node`, sorted.
    pub fn pods_on(&self, node: &str) -> Vec<(String, String)> {
        self.lock().pods_on(node)
    }

    /// Every apiserver request, rejected ones included, in arrival order.
    pub fn requests(&self) -> Vec<KubeRequest> {
        self.lock().requests.clone()
    }

    /// Every Container API request, in arrival order.
    pub fn container_requests(&self) -> Vec<KubeRequest> {
        self.lock().container_requests.clone()
    }

    /// The apiserver requests that changed state (see [`KubeRequest::is_mutation`]), in order.
    pub fn mutations(&self) -> Vec<KubeRequest> {
        self.lock().requests.iter().filter(|r| r.is_mutation()).cloned().collect()
    }

    /// Every object the API deleted (evictions, deletions, garbage collection), in order.
    pub fn deletions(&self) -> Vec<Deletion> {
        self.lock().deletions.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Locks the state, ignoring poisoning (a panicking test thread must not cascade).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
