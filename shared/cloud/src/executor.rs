//! The executor `RIPOSTE_EXECUTOR=google-cloud` runs: Compute Engine for VM targets, GKE for
//! node and pod targets. A dry-run incident's Kubernetes requests go to the API server with
//! `dryRun=All`; Compute Engine has no dry run, so its requests are only recorded.

use async_trait::async_trait;
use riposte_core::executor::{DryRunExecutor, ExecError, Executor};
use riposte_core::incident::{Incident, Step, StepReport};
use riposte_core::target::Target;

use crate::compute::ComputeExecutor;
use crate::gke::GkeExecutor;

/// Routes each step to the executor of its target.
pub struct GoogleCloudExecutor {
    compute: ComputeExecutor,
    gke: GkeExecutor,
}

impl GoogleCloudExecutor {
    /// Both executors, under one name.
    pub fn new(compute: ComputeExecutor, gke: GkeExecutor) -> GoogleCloudExecutor {
        GoogleCloudExecutor { compute, gke }
    }

    /// The executor for `step` of `incident`.
    fn route(&self, incident: &Incident, step: &Step) -> &dyn Executor {
        match step.target {
            Some(Target::Node { .. } | Target::Pod { .. }) => &self.gke,
            _ if incident.dry_run => &DryRunExecutor,
            _ => &self.compute,
        }
    }
}

#[async_trait]
impl Executor for GoogleCloudExecutor {
    fn name(&self) -> &'static str {
        "google-cloud"
    }

    fn honours_dry_run(&self) -> bool {
        true
    }

    async fn execute(&self, incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        self.route(incident, step).execute(incident, step).await
    }

    async fn release(&self, incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        self.route(incident, step).release(incident, step).await
    }
}
