//! One Kubernetes API call: classify its failure the way kube-apiserver reports it (a `Status`
//! with a code and a reason), and retry throttling, server errors and transport failures inside
//! the step's budget. Mutations riposte retries are idempotent by construction: merge patches
//! that set values, creates whose 409 AlreadyExists is checked, deletes whose 404 is success.

use std::future::Future;
use std::time::Duration;

use riposte_core::executor::{CallFailure, ExecError};

use crate::retry::{self, Failure, RetryBudget};

/// A failed Kubernetes (or Container API) call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KubeError {
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// The `Status` reason (`NotFound`, `AlreadyExists`, `Conflict`, `TooManyRequests`, …).
    pub reason: String,
    /// A human message.
    pub message: String,
}

impl KubeError {
    /// Classifies a kube client error.
    pub fn from_kube(e: &kube::Error) -> KubeError {
        match e {
            kube::Error::Api(status) => {
                KubeError { status: Some(status.code), reason: status.reason.clone(), message: status.message.clone() }
            }
            other => KubeError { status: None, reason: "transport".into(), message: other.to_string() },
        }
    }

    /// 404: the object does not exist.
    pub fn not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// 409 AlreadyExists (a create of a name that is taken).
    pub fn already_exists(&self) -> bool {
        self.status == Some(409) && self.reason == "AlreadyExists"
    }

    /// 409 because a UID precondition failed: the object under this name is another one.
    pub fn uid_changed(&self) -> bool {
        self.status == Some(409) && self.message.contains("UID in precondition")
    }

    /// 409 because the object changed since it was read (`resourceVersion`).
    pub fn stale(&self) -> bool {
        self.status == Some(409) && !self.uid_changed() && !self.already_exists()
    }

    /// 429 from an eviction that a PodDisruptionBudget refused (retried by drain, within its own
    /// patience, not by the call budget).
    pub fn disruption_budget(&self) -> bool {
        self.status == Some(429) && self.message.contains("disruption budget")
    }

    /// The step error for a failure the step cannot work around, keeping what the server said.
    pub fn into_exec(self, what: &str) -> ExecError {
        let retryable = self.transient();
        let failure =
            CallFailure { what: what.to_string(), status: self.status, reason: self.reason, message: self.message };
        ExecError::Call { failure, retryable }
    }
}

impl Failure for KubeError {
    fn transient(&self) -> bool {
        match self.status {
            None => true,
            Some(429) => !self.disruption_budget(),
            Some(code) => code == 408 || code >= 500,
        }
    }

    fn timed_out(after: Duration) -> Self {
        KubeError { status: None, reason: "timeout".into(), message: format!("no answer within {} s", after.as_secs()) }
    }
}

/// Runs one Kubernetes call with retries inside `budget`.
pub(crate) async fn kube_call<T, F, Fut>(budget: &RetryBudget, mut attempt: F) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    retry::with_retries(budget, "kubernetes", || {
        let call = attempt();
        async move { call.await.map_err(|e| KubeError::from_kube(&e)) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PodDisruptionBudget's 429 is drain's to retry, not the call's; the step error keeps the
    /// API server's status and reason.
    #[test]
    fn kubernetes_failures_keep_status_and_reason_and_a_pdb_refusal_is_not_throttling() {
        let pdb = KubeError {
            status: Some(429),
            reason: "TooManyRequests".into(),
            message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        };
        assert!(pdb.disruption_budget() && !pdb.transient());
        let throttled = KubeError { status: Some(429), reason: "TooManyRequests".into(), message: "slow down".into() };
        assert!(throttled.transient());
        let ExecError::Call { failure, retryable } = throttled.into_exec("patching node n") else { panic!("a call") };
        assert_eq!((failure.status, failure.reason.as_str(), retryable), (Some(429), "TooManyRequests", true));
        let conflict = KubeError {
            status: Some(409),
            reason: "Conflict".into(),
            message: "Precondition failed: UID in precondition: a, UID in object meta: b".into(),
        };
        assert!(conflict.uid_changed() && !conflict.stale() && !conflict.into_exec("x").is_retryable());
    }
}
