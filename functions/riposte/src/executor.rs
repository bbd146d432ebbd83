//! Building the executor (and the cluster locator that goes with it) the environment asks for;
//! shared by `serve` and `incident release`.

use std::sync::Arc;

use riposte_cloud::compute::{ComputeExecutor, ComputeSettings};
use riposte_cloud::evidence::EvidenceBucket;
use riposte_cloud::executor::GoogleCloudExecutor;
use riposte_cloud::gke::{GkeExecutor, GkeSettings, KubeToken};
use riposte_core::executor::{DryRunExecutor, Executor};
use riposte_core::locate::{Locator, NoLocator};

use crate::CliError;
use crate::config::ExecutorChoice;

/// The executor, the locator intake uses, and a line for humans.
pub struct Built {
    /// Carries out steps.
    pub executor: Arc<dyn Executor>,
    /// Finds an alert's pod, node and VM in its cluster (nothing for the dry-run executor).
    pub locator: Arc<dyn Locator>,
    /// What the executor does, for the start-up line.
    pub note: &'static str,
}

/// Builds what `choice` names.
pub async fn build(choice: &ExecutorChoice) -> Result<Built, CliError> {
    match choice {
        ExecutorChoice::DryRun => Ok(Built {
            executor: Arc::new(DryRunExecutor),
            locator: Arc::new(NoLocator),
            note: "dry-run — records requests, sends none",
        }),
        ExecutorChoice::GoogleCloud {
            compute_endpoint,
            container_endpoint,
            prefer_private_endpoint,
            storage_endpoint,
        } => {
            // An http:// endpoint is only accepted on localhost (a fake or an emulator): like the
            // emulators, it is called without Google credentials.
            let anonymous = |endpoint: &str| {
                endpoint
                    .starts_with("http://")
                    .then(|| google_cloud_auth::credentials::anonymous::Builder::new().build())
            };
            let settings = ComputeSettings { endpoint: compute_endpoint.clone(), ..ComputeSettings::default() };
            let compute = ComputeExecutor::new(settings, anonymous(compute_endpoint)).await.map_err(CliError::Usage)?;
            let token = google_cloud_auth::credentials::Builder::default()
                .build_access_token_credentials()
                .map_err(|e| CliError::Usage(format!("no Google credentials for the GKE clusters: {e}")))?;
            let settings = GkeSettings {
                container_endpoint: container_endpoint.clone(),
                prefer_private_endpoint: *prefer_private_endpoint,
                ..GkeSettings::default()
            };
            let retry = settings.retry;
            let gke = GkeExecutor::new(settings, anonymous(container_endpoint), KubeToken::Google(token))
                .await
                .map_err(CliError::Usage)?;
            let evidence = EvidenceBucket::new(storage_endpoint, anonymous(storage_endpoint), retry)
                .await
                .map_err(CliError::Usage)?;
            let gke = gke.with_evidence(evidence);
            Ok(Built {
                locator: Arc::new(gke.locator()),
                executor: Arc::new(GoogleCloudExecutor::new(compute, gke)),
                note: "google-cloud — acts on Compute Engine and GKE",
            })
        }
    }
}
