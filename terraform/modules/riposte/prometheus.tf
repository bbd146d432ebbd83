# Metrics (optional, var.metrics_sidecar_image): Google Cloud Managed Service for Prometheus's
# sidecar in each service scrapes riposte's GET /metrics on 127.0.0.1:9464 (RIPOSTE_METRICS_PORT:
# loopback only, so it needs no token and nobody outside the instance reaches it) and writes the
# series to Cloud Monitoring. The sidecar reads its scrape configuration (a RunMonitoring document)
# from /etc/rungmp/config.yaml, mounted here from Secret Manager.

locals {
  metrics_enabled = var.metrics_sidecar_image != null
  metrics_port    = 9464
  metrics_env     = local.metrics_enabled ? { RIPOSTE_METRICS_PORT = tostring(local.metrics_port) } : {}
  metrics_secrets = local.metrics_enabled ? [google_secret_manager_secret.metrics_config[0].secret_id] : []
  metrics_config = yamlencode({
    apiVersion = "monitoring.googleapis.com/v1beta"
    kind       = "RunMonitoring"
    metadata   = { name = "riposte" }
    spec = {
      endpoints = [{ port = local.metrics_port, path = "/metrics", interval = "30s" }]
    }
  })
}

resource "google_secret_manager_secret" "metrics_config" {
  count = local.metrics_enabled ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-metrics-scrape"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "metrics_config" {
  count = local.metrics_enabled ? 1 : 0

  secret      = google_secret_manager_secret.metrics_config[0].id
  secret_data = local.metrics_config
}

# The sidecar writes with the service's identity: each service account may write metric points,
# and nothing else comes with it.
resource "google_project_iam_member" "metric_writer" {
  for_each = local.metrics_enabled ? {
    ingest  = google_service_account.ingest.member
    approve = google_service_account.approve.member
  } : {}

  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = each.value
}
