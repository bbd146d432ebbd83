//! Operations (global, zonal or regional): what every mutation returns, `RUNNING` for their
//! type's latency, then `DONE` (with `error` when failed on purpose); `get` and the long-polling
//! `wait`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::errors::ApiError;
use super::links::{Scope, link, region_link, zone_link};
use super::lock;
use super::state::State;

/// The longest `wait` holds a request, as in the real API.
const WAIT_MAX: Duration = Duration::from_secs(120);

/// An operation.
#[derive(Clone, Debug)]
pub(crate) struct Operation {
    pub id: u64,
    pub name: String,
    pub op_type: String,
    pub project: String,
    /// Global, zonal or regional.
    pub scope: Scope,
    /// Target resource path.
    pub target: String,
    pub target_id: Option<u64>,
    pub insert_time: jiff::Timestamp,
    pub inserted_at: Instant,
    pub latency: Duration,
    /// `(code, message)` when the operation fails.
    pub error: Option<(String, String)>,
}

impl Operation {
    /// `projects/P/zones/Z/operations/NAME`, `projects/P/regions/R/operations/NAME` or
    /// `projects/P/global/operations/NAME`.
    pub fn path(&self) -> String {
        format!("{}/operations/{}", self.scope.path(&self.project), self.name)
    }

    /// How long until it is `DONE`.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.latency.saturating_sub(now.saturating_duration_since(self.inserted_at))
    }

    /// The operation as `get` returns it at `now`.
    pub fn to_json(&self, now: Instant) -> Value {
        let done = self.remaining(now).is_zero();
        let insert_time = self.insert_time.to_string();
        let mut op = json!({
            "kind": "compute#operation",
            "id": self.id.to_string(),
            "name": self.name,
            "operationType": self.op_type,
            "targetLink": link(&self.target),
            "status": if done { "DONE" } else { "RUNNING" },
            "progress": if done { 100 } else { 0 },
            "insertTime": insert_time,
            "startTime": insert_time,
            "user": "riposte@fake",
            "selfLink": link(&self.path()),
        });
        if let Some(target_id) = self.target_id {
            op["targetId"] = json!(target_id.to_string());
        }
        match &self.scope {
            Scope::Zone(zone) => op["zone"] = json!(zone_link(&self.project, zone)),
            Scope::Region(region) => op["region"] = json!(region_link(&self.project, region)),
            Scope::Global => {}
        }
        if done {
            let end = self.insert_time.checked_add(self.latency).unwrap_or(self.insert_time);
            op["endTime"] = json!(end.to_string());
            if let Some((code, message)) = &self.error {
                op["error"] = json!({"errors": [{"code": code, "message": message}]});
                op["httpErrorStatusCode"] = json!(400);
                op["httpErrorMessage"] = json!("BAD REQUEST");
            }
        }
        op
    }
}

/// `operations.get`.
pub(crate) fn get(state: &State, path: &str) -> Result<Value, ApiError> {
    state.operations.get(path).map(|op| op.to_json(Instant::now())).ok_or_else(|| ApiError::not_found(path))
}

/// `operations.wait`: answers as soon as the operation is `DONE`, or after two minutes with its
/// current status.
pub(crate) async fn wait(state: &Mutex<State>, path: &str) -> Result<Value, ApiError> {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let now = Instant::now();
        let (op, remaining) = {
            let state = lock(state);
            let op = state.operations.get(path).ok_or_else(|| ApiError::not_found(path))?;
            (op.to_json(now), op.remaining(now))
        };
        if remaining.is_zero() || now >= deadline {
            return Ok(op);
        }
        tokio::time::sleep(remaining.min(deadline - now)).await;
    }
}
