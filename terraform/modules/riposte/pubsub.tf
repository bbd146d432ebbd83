# Cloud Logging → log sink → Pub/Sub topic → push subscription → POST /v1/pubsub on ingest.
#
# Two kinds of log entries are routed (tests/fixtures/pubsub/ shows both as delivered):
#   - Falco's alerts on its own standard output (json_output: true): resource.type k8s_container,
#     namespace/container of the Falco DaemonSet, jsonPayload with Falco's `rule` and `priority`
#     (push-falco-container-log.json). This works with or without Falcosidekick; alerts arriving by
#     both routes join the same incident.
#   - GKE audit log entries of a pod exec: resource.type k8s_cluster, protoPayload.methodName
#     io.k8s.core.v1.pods.exec.create (push-gke-audit-exec.json).

locals {
  falco_log_filter = join(" AND ", [
    "resource.type=\"k8s_container\"",
    "resource.labels.namespace_name=\"${var.falco_namespace}\"",
    "resource.labels.container_name=\"${var.falco_container}\"",
    # A Falco alert, not one of Falco's own log lines.
    "jsonPayload.rule:*",
    "jsonPayload.priority:*",
  ])

  audit_exec_filter = join(" AND ", [
    "resource.type=\"k8s_cluster\"",
    "protoPayload.serviceName=\"k8s.io\"",
    "(${join(" OR ", [for m in var.audit_exec_methods : "protoPayload.methodName=\"${m}\""])})",
  ])

  log_sink_filter = join(" OR ", concat(
    ["(${local.falco_log_filter})", "(${local.audit_exec_filter})"],
    var.extra_log_filter == null ? [] : ["(${var.extra_log_filter})"],
  ))
}

resource "google_pubsub_topic" "alerts" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest; a customer-managed Cloud KMS key (and its grant to the Pub/Sub service agent) is an organisation-wide choice this module does not impose.
  project = var.project_id
  name    = "${var.name_prefix}-alerts"
  labels  = var.labels
  # Kept while the push fails (riposte down, a bad deploy): 7 days to catch up.
  message_retention_duration = "604800s"

  depends_on = [google_project_service.apis]
}

# Messages riposte answered with an error five times. riposte acknowledges what it can never
# process (and keeps it as a rejection), so what lands here is what failed for other reasons.
resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest; a customer-managed Cloud KMS key (and its grant to the Pub/Sub service agent) is an organisation-wide choice this module does not impose.
  project                    = var.project_id
  name                       = "${var.name_prefix}-alerts-dead-letter"
  labels                     = var.labels
  message_retention_duration = "604800s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "push" {
  project = var.project_id
  name    = "${var.name_prefix}-logging-push"
  topic   = google_pubsub_topic.alerts.id
  labels  = var.labels

  # riposte answers once the alert is durable (steps run after the answer): seconds, not minutes.
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  push_config {
    push_endpoint = local.pubsub_push_endpoint
    # Wrapped delivery (message.data base64), which riposte parses; the OIDC token is verified
    # against RIPOSTE_PUBSUB_AUDIENCE and RIPOSTE_PUBSUB_INVOKER.
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.pubsub_push_endpoint
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = 5
  }

  # Never expire for inactivity: a quiet week must not delete the route.
  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}

# The dead letters are kept (7 days) where an operator can pull and replay them
# (riposte replay reads a saved push body).
resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${var.name_prefix}-alerts-dead-letter"
  topic   = google_pubsub_topic.dead_letter.id
  labels  = var.labels

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's service agent forwards undeliverable messages: publisher on the dead-letter topic,
# subscriber on the subscription it takes them from.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

resource "google_logging_project_sink" "alerts" {
  for_each = local.log_sink_projects

  project                = each.value
  name                   = "${var.name_prefix}-alerts"
  description            = "Falco alerts from the Falco containers' standard output and GKE pod exec audit entries, for riposte."
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.alerts.id}"
  filter                 = local.log_sink_filter
  unique_writer_identity = true

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic_iam_member" "sink_publisher" {
  for_each = local.log_sink_projects

  project = var.project_id
  topic   = google_pubsub_topic.alerts.name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.alerts[each.value].writer_identity
}
