# Cloud Monitoring → webhook notification channel → POST /v1/monitoring on ingest (basic auth).
# Attach the channel to any alert policy whose incidents riposte should see; riposte takes the
# policy's display name as the alert's rule (match it with `rules:` in the policy file).

resource "google_monitoring_notification_channel" "riposte" {
  project      = var.project_id
  display_name = "riposte (${local.ingest_name})"
  description  = "riposte's incident-response intake. Incidents notified here are matched against riposte's policies."
  type         = "webhook_basicauth"
  user_labels  = var.labels

  labels = {
    url      = "${local.ingest_url}/v1/monitoring"
    username = var.monitoring_username
  }

  sensitive_labels {
    password = random_password.monitoring.result
  }

  depends_on = [google_project_service.apis]
}

# The example policy file's `node-cpu-pegged` policy matches this alert policy's incidents
# (rules: ["Node CPU pegged*"], instances: ["gke-*"]): snapshot and quarantine the node's VM.
resource "google_monitoring_alert_policy" "node_cpu_pegged" {
  count = var.create_example_alert_policy ? 1 : 0

  project      = var.project_id
  display_name = "Node CPU pegged (possible cryptomining)"
  combiner     = "OR"
  severity     = "CRITICAL"
  user_labels  = merge(var.labels, { riposte = "contain" })

  conditions {
    display_name = "GKE node VM - CPU utilization above 95% for 10m"

    condition_threshold {
      filter          = "resource.type = \"gce_instance\" AND metric.type = \"compute.googleapis.com/instance/cpu/utilization\" AND metric.labels.instance_name = starts_with(\"gke-\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0.95
      duration        = "600s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "CRITICAL - Node CPU pegged"
    content   = "Sustained CPU on a GKE node can mean cryptomining. riposte snapshots the node's disks and quarantines it (policy node-cpu-pegged)."
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "86400s"
  }

  notification_channels = [google_monitoring_notification_channel.riposte.id]
}
