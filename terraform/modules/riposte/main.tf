# riposte on Cloud Run: two services from one image.
#
#   ingest   RIPOSTE_ROLE=ingest   POST /v1/falco, /v1/monitoring, /v1/pubsub, /tasks/sweep;
#                                  runs the automatic (safe) steps. Public: Falcosidekick and Cloud
#                                  Monitoring cannot present Google identity tokens, so riposte
#                                  authenticates every source itself (bearer token, basic auth,
#                                  Pub/Sub's OIDC token, Cloud Scheduler's OIDC token).
#   approve  RIPOSTE_ROLE=approve  GET/POST /approvals/{token}, /tasks/sweep; runs the destructive
#                                  steps after a human approval. Public (links are signed) or behind
#                                  IAP.
#
# Service URLs are deterministic (https://SERVICE-PROJECT_NUMBER.REGION.run.app), which lets each
# service know its own URL (sweep audience) and the other's (approval links) without a cycle.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  project_number = data.google_project.this.number

  ingest_name  = "${var.name_prefix}-ingest"
  approve_name = "${var.name_prefix}-approve"
  ingest_url   = "https://${local.ingest_name}-${local.project_number}.${var.region}.run.app"
  approve_url  = "https://${local.approve_name}-${local.project_number}.${var.region}.run.app"
  # Where approval links point: the approve service, or the load balancer in front of it (IAP).
  public_url = trimsuffix(coalesce(var.approve_public_url, local.approve_url), "/")

  pubsub_push_endpoint = "${local.ingest_url}/v1/pubsub"

  target_projects   = length(var.target_projects) > 0 ? toset(var.target_projects) : toset([var.project_id])
  log_sink_projects = length(var.log_sink_projects) > 0 ? toset(var.log_sink_projects) : toset([var.project_id])

  scheduler_region   = coalesce(var.scheduler_region, var.region)
  firestore_location = coalesce(var.firestore_location, var.region)

  # Google-managed service agents of this project.
  pubsub_service_agent = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  iap_service_agent    = "serviceAccount:service-${local.project_number}@gcp-sa-iap.iam.gserviceaccount.com"

  # The policy file is a Secret Manager secret mounted as a file; the image carries the example
  # policy at the same path, hidden by the mount.
  policy_dir  = "/etc/riposte"
  policy_file = "policy.yaml"

  apis = toset(concat(
    [
      "cloudresourcemanager.googleapis.com",
      "iam.googleapis.com",
      "run.googleapis.com",
      "firestore.googleapis.com",
      "pubsub.googleapis.com",
      "secretmanager.googleapis.com",
      "cloudscheduler.googleapis.com",
      "logging.googleapis.com",
      "monitoring.googleapis.com",
      "compute.googleapis.com",
      "container.googleapis.com",
    ],
    var.create_artifact_registry ? ["artifactregistry.googleapis.com"] : [],
    var.enable_iap ? ["iap.googleapis.com"] : [],
  ))
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? local.apis : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

resource "google_artifact_registry_repository" "riposte" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption at rest; a customer-managed Cloud KMS key is an organisation-wide choice this module does not impose (it holds riposte's container image, no incident data).
  count = var.create_artifact_registry ? 1 : 0

  project       = var.project_id
  location      = var.region
  repository_id = var.artifact_registry_repository_id
  format        = "DOCKER"
  description   = "riposte container images"
  labels        = var.labels

  docker_config {
    # A tag names one build forever: what runs is what was reviewed.
    immutable_tags = true
  }

  depends_on = [google_project_service.apis]
}
