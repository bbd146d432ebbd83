//! Pod logs (`GET …/pods/{p}/log`) and events, as the kubelet and the API server serve them.

use serde_json::{Value, json};

use super::objects::{IMAGE, now};
use super::routes::Resource;
use super::state::{State, key};
use super::status::KubeError;
use super::{ContainerLogs, EventSpec};
use crate::fake_http::Query;

/// `GET /api/v1/namespaces/{ns}/pods/{p}/log`: `container` (required when the pod has more
/// than one), `previous` (the last terminated instance's; 400 when there is none, as the kubelet
/// answers), `limitBytes` (the log cut to that many bytes). Answered as text; a container waiting
/// to start has no current log (400, as the kubelet answers).
pub(crate) fn read(state: &State, namespace: &str, pod: &str, query: &Query) -> Result<Value, KubeError> {
    let object = state.object(Resource::Pod, namespace, pod).ok_or_else(|| KubeError::not_found(Resource::Pod, pod))?;
    let names: Vec<String> = object
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let container = match query.get("container") {
        Some(c) => c.to_owned(),
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(KubeError::bad_request(format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    if !names.contains(&container) {
        return Err(KubeError::bad_request(format!("container {container} is not valid for pod {pod}")));
    }
    let previous = query.get("previous").is_some_and(|p| p == "true");
    let waiting = object
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|s| s["name"] == json!(container))
        .and_then(|s| s.pointer("/state/waiting/reason"))
        .and_then(Value::as_str);
    if let (Some(reason), false) = (waiting, previous) {
        return Err(KubeError::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"
        )));
    }
    let log = state.logs.get(&(namespace.to_owned(), pod.to_owned(), container.clone(), previous));
    let text = match (log, previous) {
        (Some(text), _) => text.clone(),
        (None, true) => {
            return Err(KubeError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod}\" not found"
            )));
        }
        (None, false) => String::new(),
    };
    let limit =
        match query.get("limitBytes") {
            Some(l) => l.parse::<usize>().ok().filter(|l| *l > 0).ok_or_else(|| {
                KubeError::bad_request(format!("limitBytes: Invalid value: {l}: must be greater than 0"))
            })?,
            None => usize::MAX,
        };
    // Cut at a byte, as the kubelet does (it may split a character).
    let bytes = &text.as_bytes()[..text.len().min(limit)];
    Ok(Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

impl State {
    /// Gives the pod container `logs.container` (added to its spec if missing) with its logs; with
    /// a previous instance's log the container shows one restart and a terminated last state.
    pub fn set_container_logs(&mut self, namespace: &str, pod: &str, logs: ContainerLogs) {
        let k = key(Resource::Pod, namespace, pod);
        let mut object =
            self.objects.get(&k).cloned().unwrap_or_else(|| panic!("set_container_logs: no pod {namespace}/{pod}"));
        let name = logs.container.clone();
        let containers = object["spec"]["containers"].as_array_mut().expect("containers");
        if !containers.iter().any(|c| c["name"] == json!(name)) {
            containers.push(json!({"name": name, "image": IMAGE, "imagePullPolicy": "IfNotPresent"}));
        }
        let mut status = json!({
            "name": name, "image": IMAGE, "imageID": format!("{IMAGE}@sha256:{}", "0".repeat(64)),
            "containerID": format!("containerd://{}", "1".repeat(64)), "ready": true, "started": true,
            "restartCount": u32::from(logs.previous.is_some()), "state": {"running": {"startedAt": now()}},
            "lastState": {},
        });
        if logs.previous.is_some() {
            status["lastState"] =
                json!({"terminated": {"exitCode": 137, "reason": "Error", "startedAt": now(), "finishedAt": now()}});
        }
        if let Some(reason) = &logs.waiting {
            status["state"] = json!({"waiting": {"reason": reason}});
            status["ready"] = json!(false);
            status["started"] = json!(false);
        }
        let statuses = object["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
        let mut statuses: Vec<Value> = statuses.into_iter().filter(|s| s["name"] != json!(name)).collect();
        statuses.push(status);
        object["status"]["containerStatuses"] = json!(statuses);
        self.store(k, object);
        let at = |previous| (namespace.to_owned(), pod.to_owned(), name.clone(), previous);
        self.logs.insert(at(false), logs.current);
        match logs.previous {
            Some(previous) => self.logs.insert(at(true), previous),
            None => self.logs.remove(&at(true)),
        };
    }

    /// Records an event about an object, as a controller or the kubelet would.
    pub fn add_event(&mut self, spec: EventSpec) -> String {
        let name = format!("{}.{}", spec.object_name, self.uids.suffix(16));
        let uid = self.uids.uid();
        let mut involved = json!({"kind": spec.object_kind, "name": spec.object_name, "apiVersion": "v1"});
        if spec.object_kind != "Node" {
            involved["namespace"] = json!(spec.namespace);
        }
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": spec.namespace, "uid": uid, "creationTimestamp": now()},
            "involvedObject": involved,
            "reason": spec.reason, "message": spec.message, "type": spec.event_type,
            "count": 1, "firstTimestamp": now(), "lastTimestamp": now(),
            "source": {"component": "kubelet"},
        });
        self.store(key(Resource::Event, &spec.namespace, &name), event);
        name
    }
}
