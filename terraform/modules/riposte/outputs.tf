output "ingest_url" {
  description = "URL of the ingest service."
  value       = local.ingest_url
}

output "approve_url" {
  description = "URL of the approve service (run.app)."
  value       = local.approve_url
}

output "public_url" {
  description = "RIPOSTE_PUBLIC_URL: where approval links point (approve_url, or the load balancer's URL with IAP)."
  value       = local.public_url
}

output "falco_webhook_url" {
  description = "Falcosidekick webhook address (falcosidekick.config.webhook.address)."
  value       = "${local.ingest_url}/v1/falco"
}

output "monitoring_webhook_url" {
  description = "Cloud Monitoring webhook URL of the notification channel (basic auth)."
  value       = "${local.ingest_url}/v1/monitoring"
}

output "pubsub_push_endpoint" {
  description = "Push endpoint (and OIDC audience) of the log-sink subscription."
  value       = local.pubsub_push_endpoint
}

output "falco_token" {
  description = "Bearer token Falcosidekick must send: Authorization: Bearer <token>."
  value       = random_password.falco_token.result
  sensitive   = true
}

output "monitoring_username" {
  description = "Basic-auth user of the Monitoring webhook channel."
  value       = var.monitoring_username
}

output "monitoring_password" {
  description = "Basic-auth password of the Monitoring webhook channel."
  value       = random_password.monitoring.result
  sensitive   = true
}

output "ingest_service_account" {
  description = "Email of the ingest service's account."
  value       = google_service_account.ingest.email
}

output "approve_service_account" {
  description = "Email of the approve service's account."
  value       = google_service_account.approve.email
}

output "push_service_account" {
  description = "Email of the account Pub/Sub's push OIDC tokens are issued to (RIPOSTE_PUBSUB_INVOKER)."
  value       = google_service_account.push.email
}

output "scheduler_service_account" {
  description = "Email of the account Cloud Scheduler's sweep OIDC tokens are issued to (RIPOSTE_SWEEP_INVOKER)."
  value       = google_service_account.scheduler.email
}

output "signing_key_secret_id" {
  description = "Secret holding RIPOSTE_SIGNING_KEY; add its value with: riposte keygen | … | gcloud secrets versions add <id> --data-file=-."
  value       = google_secret_manager_secret.signing_key.secret_id
}

output "policy_secret_id" {
  description = "Secret holding the policy file (mounted at /etc/riposte/policy.yaml)."
  value       = google_secret_manager_secret.policy.secret_id
}

output "falco_token_secret_id" {
  description = "Secret holding RIPOSTE_FALCO_TOKEN."
  value       = google_secret_manager_secret.falco_token.secret_id
}

output "monitoring_password_secret_id" {
  description = "Secret holding RIPOSTE_MONITORING_PASSWORD."
  value       = google_secret_manager_secret.monitoring_password.secret_id
}

output "alerts_topic" {
  description = "Pub/Sub topic the log sink publishes to."
  value       = google_pubsub_topic.alerts.name
}

output "dead_letter_topic" {
  description = "Pub/Sub topic of messages riposte failed to take after five deliveries."
  value       = google_pubsub_topic.dead_letter.name
}

output "push_subscription" {
  description = "Push subscription delivering the topic to /v1/pubsub."
  value       = google_pubsub_subscription.push.name
}

output "dead_letter_subscription" {
  description = "Pull subscription keeping the dead letters."
  value       = google_pubsub_subscription.dead_letter.name
}

output "log_sink_filter" {
  description = "Filter of the log sink(s)."
  value       = local.log_sink_filter
}

output "notification_channel" {
  description = "Id of the Cloud Monitoring notification channel to attach to alert policies."
  value       = google_monitoring_notification_channel.riposte.id
}

output "artifact_registry_repository" {
  description = "Docker repository path to push the image to (when create_artifact_registry), else null."
  value       = var.create_artifact_registry ? "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.riposte[0].repository_id}" : null
}

output "custom_roles" {
  description = "Custom role names per target project."
  value = {
    for p in local.target_projects : p => {
      ingest    = google_project_iam_custom_role.ingest[p].name
      approve   = google_project_iam_custom_role.approve[p].name
      responder = length(var.responders) > 0 ? google_project_iam_custom_role.responder[p].name : null
    }
  }
}
