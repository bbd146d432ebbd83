//! Which call a request is: the kube-apiserver's REST paths, parsed by hand, and the kinds of
//! object the fake stores.

use crate::fake_http::percent_decode;

/// A kind of object the fake stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Resource {
    Node,
    Pod,
    NetworkPolicy,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Event,
}

const ALL: [Resource; 10] = [
    Resource::Node,
    Resource::Pod,
    Resource::NetworkPolicy,
    Resource::Deployment,
    Resource::ReplicaSet,
    Resource::StatefulSet,
    Resource::DaemonSet,
    Resource::Job,
    Resource::CronJob,
    Resource::Event,
];

impl Resource {
    /// `kind`, e.g. `ReplicaSet`.
    pub fn kind(self) -> &'static str {
        match self {
            Resource::Node => "Node",
            Resource::Pod => "Pod",
            Resource::NetworkPolicy => "NetworkPolicy",
            Resource::Deployment => "Deployment",
            Resource::ReplicaSet => "ReplicaSet",
            Resource::StatefulSet => "StatefulSet",
            Resource::DaemonSet => "DaemonSet",
            Resource::Job => "Job",
            Resource::CronJob => "CronJob",
            Resource::Event => "Event",
        }
    }

    /// The resource name in paths, e.g. `replicasets`.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Node => "nodes",
            Resource::Pod => "pods",
            Resource::NetworkPolicy => "networkpolicies",
            Resource::Deployment => "deployments",
            Resource::ReplicaSet => "replicasets",
            Resource::StatefulSet => "statefulsets",
            Resource::DaemonSet => "daemonsets",
            Resource::Job => "jobs",
            Resource::CronJob => "cronjobs",
            Resource::Event => "events",
        }
    }

    /// The API group (empty for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Resource::Node | Resource::Pod | Resource::Event => "",
            Resource::NetworkPolicy => "networking.k8s.io",
            Resource::Deployment | Resource::ReplicaSet | Resource::StatefulSet | Resource::DaemonSet => "apps",
            Resource::Job | Resource::CronJob => "batch",
        }
    }

    /// `apiVersion`, e.g. `apps/v1`.
    pub fn api_version(self) -> &'static str {
        api_version_of_group(self.group())
    }

    /// Whether objects live in a namespace.
    pub fn namespaced(self) -> bool {
        self != Resource::Node
    }

    /// One of the six workload kinds.
    pub fn is_workload(self) -> bool {
        !matches!(self, Resource::Node | Resource::Pod | Resource::NetworkPolicy | Resource::Event)
    }

    /// The group-qualified resource of messages, e.g. `pods`, `deployments.apps`.
    pub fn qualified(self) -> String {
        qualify(self.plural(), self.group())
    }

    /// The group-qualified kind of `Invalid` messages, e.g. `Pod`, `NetworkPolicy.networking.k8s.io`.
    pub fn qualified_kind(self) -> String {
        qualify(self.kind(), self.group())
    }

    /// The resource of a kind.
    pub fn from_kind(kind: &str) -> Option<Resource> {
        ALL.into_iter().find(|r| r.kind() == kind)
    }

    fn from_path(group: &str, plural: &str) -> Option<Resource> {
        ALL.into_iter().find(|r| r.group() == group && r.plural() == plural)
    }
}

/// `apiVersion` of objects of a group (`v1` for the core group).
pub(crate) fn api_version_of_group(group: &str) -> &'static str {
    match group {
        "" => "v1",
        "apps" => "apps/v1",
        "batch" => "batch/v1",
        "networking.k8s.io" => "networking.k8s.io/v1",
        "policy" => "policy/v1",
        _ => "v1",
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() { name.to_owned() } else { format!("{name}.{group}") }
}

/// A recognised path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/version`.
    Version,
    /// A collection: all namespaces (`None`) or one.
    Collection { resource: Resource, namespace: Option<String> },
    /// One object (`namespace` empty for nodes).
    Object { resource: Resource, namespace: String, name: String },
    /// A pod's `eviction` subresource.
    Eviction { namespace: String, name: String },
    /// A pod's `log` subresource.
    Log { namespace: String, name: String },
}

impl Route {
    /// Whether the fake serves `method` on this path (else 405).
    pub fn allows(&self, method: &str) -> bool {
        match self {
            Route::Version => method == "GET",
            Route::Collection { resource, namespace } => {
                method == "GET" || (method == "POST" && *resource == Resource::NetworkPolicy && namespace.is_some())
            }
            Route::Object { resource, .. } => match method {
                "GET" => true,
                "PATCH" => matches!(resource, Resource::Node | Resource::Pod),
                "DELETE" => !matches!(resource, Resource::Node | Resource::Event),
                _ => false,
            },
            Route::Eviction { .. } => method == "POST",
            Route::Log { .. } => method == "GET",
        }
    }
}

/// The route of `path`, or `None` (404).
pub(crate) fn parse(path: &str) -> Option<Route> {
    let segments: Vec<String> = path.strip_prefix('/')?.split('/').map(percent_decode).collect();
    if segments.iter().any(String::is_empty) {
        return None;
    }
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (group, rest) = match s.as_slice() {
        ["version"] => return Some(Route::Version),
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, "v1", rest @ ..] => (*group, rest),
        _ => return None,
    };
    let route = match rest {
        [plural] => Route::Collection { resource: Resource::from_path(group, plural)?, namespace: None },
        [plural, name] => {
            let resource = Resource::from_path(group, plural).filter(|r| !r.namespaced())?;
            Route::Object { resource, namespace: String::new(), name: name.to_string() }
        }
        ["namespaces", ns, plural] => {
            let resource = Resource::from_path(group, plural).filter(|r| r.namespaced())?;
            Route::Collection { resource, namespace: Some(ns.to_string()) }
        }
        ["namespaces", ns, plural, name] => {
            let resource = Resource::from_path(group, plural).filter(|r| r.namespaced())?;
            Route::Object { resource, namespace: ns.to_string(), name: name.to_string() }
        }
        ["namespaces", ns, "pods", name, "eviction"] if group.is_empty() => {
            Route::Eviction { namespace: ns.to_string(), name: name.to_string() }
        }
        ["namespaces", ns, "pods", name, "log"] if group.is_empty() => {
            Route::Log { namespace: ns.to_string(), name: name.to_string() }
        }
        _ => return None,
    };
    Some(route)
}
