# Cloud Scheduler → POST /tasks/sweep on each service, every minute. Cloud Run gives an instance
# CPU reliably only while it serves a request; the sweep runs every step that is ready (or whose
# lease lapsed because an instance died) inside the request. riposte accepts only a Google-signed
# OIDC token with audience RIPOSTE_SWEEP_AUDIENCE (the service URL) issued to
# RIPOSTE_SWEEP_INVOKER (the scheduler account).

locals {
  sweep_targets = {
    ingest  = local.ingest_url
    approve = local.approve_url
  }
}

resource "google_cloud_scheduler_job" "sweep" {
  for_each = local.sweep_targets

  project          = var.project_id
  region           = local.scheduler_region
  name             = "${var.name_prefix}-${each.key}-sweep"
  description      = "Resume riposte's unfinished steps on the ${each.key} service."
  schedule         = var.sweep_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${var.request_timeout_seconds}s"

  # The next run is a minute away: no retries of a missed one.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${each.value}/tasks/sweep"

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = each.value
    }
  }

  depends_on = [
    google_project_service.apis,
    google_cloud_run_v2_service_iam_member.ingest_scheduler,
    google_cloud_run_v2_service_iam_member.approve_scheduler,
  ]
}
