//! Everything the fake knows: the cluster's objects, the knobs, and the records.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::objects::{self, Uids, owner_uids, tidy, uid_of};
use super::routes::Resource;
use super::{Deletion, DeletionCause, KubeRequest, NodeSpec, PodSpec, WorkloadSpec};

/// `(resource, namespace, name)`; the namespace is empty for nodes.
pub(crate) type Key = (Resource, String, String);

/// The key of an object.
pub(crate) fn key(resource: Resource, namespace: &str, name: &str) -> Key {
    (resource, namespace.to_owned(), name.to_owned())
}

/// The registered cluster and how to reach its apiserver.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    pub project: String,
    pub location: String,
    pub name: String,
    /// `127.0.0.1:PORT`.
    pub apiserver: String,
    pub ca_pem: String,
}

/// A queued injected failure (see `FakeGke::fail_next`).
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub method: String,
    pub prefix: String,
    pub status: u16,
    pub remaining: u32,
}

/// How a deletion treats the deleted object's dependents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// The fake's whole state, behind one mutex (never held across an `.await`).
#[derive(Debug)]
pub(crate) struct State {
    pub cluster: Cluster,
    pub private_only: bool,
    pub tokens: BTreeSet<String>,
    pub tokens_seen: Vec<String>,
    pub objects: BTreeMap<Key, Value>,
    /// The last spec each pod was added with, for `recreate_pod`.
    pub pod_specs: BTreeMap<(String, String), PodSpec>,
    /// Blocked evictions: pod → how many more refusals (`None`: forever).
    pub blocked: BTreeMap<(String, String), Option<u32>>,
    pub failures: Vec<Failure>,
    pub latency: Duration,
    pub requests: Vec<KubeRequest>,
    pub container_requests: Vec<KubeRequest>,
    pub deletions: Vec<Deletion>,
    /// Container logs: `(namespace, pod, container, previous instance)` → text.
    pub logs: BTreeMap<(String, String, String, bool), String>,
    /// The last resourceVersion handed out.
    resource_version: u64,
    pub uids: Uids,
}

impl State {
    pub fn new(cluster: Cluster) -> State {
        State {
            cluster,
            private_only: false,
            tokens: BTreeSet::from(["test-token".to_owned()]),
            tokens_seen: Vec::new(),
            objects: BTreeMap::new(),
            pod_specs: BTreeMap::new(),
            blocked: BTreeMap::new(),
            failures: Vec::new(),
            latency: Duration::ZERO,
            requests: Vec::new(),
            container_requests: Vec::new(),
            deletions: Vec::new(),
            logs: BTreeMap::new(),
            resource_version: 1000,
            uids: Uids::new(),
        }
    }

    /// The current resourceVersion (of lists).
    pub fn resource_version(&self) -> String {
        self.resource_version.to_string()
    }

    /// Stores `object` under `key` with a new resourceVersion.
    pub fn store(&mut self, key: Key, mut object: Value) -> Value {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        tidy(&mut object);
        self.objects.insert(key, object.clone());
        object
    }

    /// A stored object.
    pub fn object(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.objects.get(&key(resource, namespace, name)).cloned()
    }

    /// Takes the next matching injected failure's status, if one is queued.
    pub fn take_failure(&mut self, method: &str, path: &str) -> Option<u16> {
        let failure =
            self.failures.iter_mut().find(|f| f.remaining > 0 && f.method == method && path.starts_with(&f.prefix))?;
        failure.remaining -= 1;
        let status = failure.status;
        self.failures.retain(|f| f.remaining > 0);
        Some(status)
    }

    /// Records a presented bearer token (consecutive repeats collapsed).
    pub fn saw_token(&mut self, token: &str) {
        if self.tokens_seen.last().map(String::as_str) != Some(token) {
            self.tokens_seen.push(token.to_owned());
        }
    }

    /// The uid of the object of `kind` named `name` that an object in `namespace` would point
    /// to, or a random one; with the ownerReference.
    fn owner_reference(&mut self, namespace: &str, owner: Option<&(String, String)>) -> Option<Value> {
        let (kind, name) = owner?;
        let stored = Resource::from_kind(kind).and_then(|resource| {
            let namespace = if resource.namespaced() { namespace } else { "" };
            self.objects.get(&key(resource, namespace, name)).map(|o| uid_of(o).to_owned())
        });
        let uid = stored.unwrap_or_else(|| self.uids.uid());
        Some(objects::owner_reference(kind, name, &uid))
    }

    pub fn add_node(&mut self, spec: &NodeSpec) -> String {
        let uid = self.uids.uid();
        self.store(key(Resource::Node, "", &spec.name), objects::node(spec, &uid));
        uid
    }

    pub fn add_pod(&mut self, spec: PodSpec) -> String {
        let uid = self.uids.uid();
        let owner = self.owner_reference(&spec.namespace, spec.owner.as_ref());
        let mirror = spec.mirror.then(|| self.uids.suffix(32));
        self.store(key(Resource::Pod, &spec.namespace, &spec.name), objects::pod(&spec, &uid, owner, mirror));
        self.pod_specs.insert((spec.namespace.clone(), spec.name.clone()), spec);
        uid
    }

    pub fn add_workload(&mut self, spec: &WorkloadSpec) -> String {
        let resource = Resource::from_kind(&spec.kind)
            .filter(|r| r.is_workload())
            .unwrap_or_else(|| panic!("add_workload: unknown workload kind {:?}", spec.kind));
        let uid = self.uids.uid();
        let owner = self.owner_reference(&spec.namespace, spec.owner.as_ref());
        let object = objects::workload(resource, &spec.namespace, &spec.name, &uid, owner);
        self.store(key(resource, &spec.namespace, &spec.name), object);
        uid
    }

    pub fn add_network_policy(&mut self, namespace: &str, policy: Value) -> String {
        let object = super::writes::new_network_policy(self, namespace, policy)
            .unwrap_or_else(|e| panic!("add_network_policy: {}", e.message));
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let stored = self.store(key(Resource::NetworkPolicy, namespace, &name), object);
        uid_of(&stored).to_owned()
    }

    pub fn recreate_pod(&mut self, namespace: &str, name: &str) -> String {
        let spec = self
            .pod_specs
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_else(|| panic!("recreate_pod: no pod {namespace}/{name} was ever added"));
        self.objects.remove(&key(Resource::Pod, namespace, name));
        self.add_pod(spec)
    }

    pub fn pods_on(&self, node: &str) -> Vec<(String, String)> {
        self.objects
            .iter()
            .filter(|((resource, _, _), pod)| {
                *resource == Resource::Pod && pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
            })
            .map(|((_, namespace, name), _)| (namespace.clone(), name.clone()))
            .collect()
    }

    /// Deletes `key` and treats its dependents per `policy`, recursively, like the garbage
    /// collector: each dependent loses its ownerReference to a deleted object and is deleted
    /// (unless orphaning) once none of its owners is left. Records every deletion.
    pub fn delete(&mut self, key: &Key, policy: Propagation, grace: Option<i64>, cause: DeletionCause) {
        let Some(object) = self.objects.remove(key) else { return };
        self.resource_version += 1;
        let uid = uid_of(&object).to_owned();
        self.deletions.push(Deletion {
            kind: key.0.kind().to_owned(),
            namespace: key.1.clone(),
            name: key.2.clone(),
            uid: uid.clone(),
            grace_period_seconds: grace,
            cause,
        });
        let dependents: Vec<Key> =
            self.objects.iter().filter(|(_, o)| owner_uids(o).contains(&uid)).map(|(k, _)| k.clone()).collect();
        for dependent in dependents {
            let Some(mut object) = self.objects.get(&dependent).cloned() else { continue };
            if let Some(Value::Array(refs)) = object.pointer_mut("/metadata/ownerReferences") {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
            }
            let owner_left = owner_uids(&object).iter().any(|owner| self.objects.values().any(|o| uid_of(o) == owner));
            if policy == Propagation::Orphan || owner_left {
                self.store(dependent, object);
            } else {
                self.delete(&dependent, policy, None, DeletionCause::GarbageCollector);
            }
        }
    }
}
