# Example root: riposte on Cloud Run in one project. See docs/DEPLOY.md for the whole procedure
# (image, signing key, policy, two-phase first apply, Falcosidekick, Monitoring).

terraform {
  required_version = ">= 1.3"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.10"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5"
    }
  }

  # The state holds generated tokens: keep it in a bucket only the deployers can read, e.g.
  # backend "gcs" {
  #   bucket = "my-tfstate-bucket"
  #   prefix = "riposte"
  # }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "riposte" {
  source = "../../modules/riposte"

  project_id = var.project_id
  region     = var.region
  image      = var.image

  create_artifact_registry = var.create_artifact_registry
  executor                 = var.executor
  deletion_protection      = var.deletion_protection

  # The policy file goes into its secret from here; null leaves that to gcloud.
  policy_yaml = var.policy_file == null ? null : file(var.policy_file)

  notifier_secrets      = var.notifier_secrets
  target_projects       = var.target_projects
  forensics_project     = var.forensics_project
  evidence_bucket       = var.evidence_bucket
  metrics_sidecar_image = var.metrics_sidecar_image
  responders            = var.responders

  create_example_alert_policy = var.create_example_alert_policy

  enable_iap           = var.enable_iap
  approve_iap_audience = var.approve_iap_audience
  approve_public_url   = var.approve_public_url
  iap_accessors        = var.iap_accessors

  labels = var.labels
}
