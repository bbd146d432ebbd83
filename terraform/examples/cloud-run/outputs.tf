output "ingest_url" {
  description = "URL of the ingest service."
  value       = module.riposte.ingest_url
}

output "approve_url" {
  description = "URL of the approve service."
  value       = module.riposte.approve_url
}

output "falco_webhook_url" {
  description = "Falcosidekick webhook address."
  value       = module.riposte.falco_webhook_url
}

output "falco_token" {
  description = "Falcosidekick's bearer token (terraform output -raw falco_token)."
  value       = module.riposte.falco_token
  sensitive   = true
}

output "monitoring_password" {
  description = "Basic-auth password of the Monitoring webhook channel (user: riposte)."
  value       = module.riposte.monitoring_password
  sensitive   = true
}

output "pubsub_push_endpoint" {
  description = "Push endpoint of the log-sink subscription."
  value       = module.riposte.pubsub_push_endpoint
}

output "notification_channel" {
  description = "Monitoring notification channel to attach to your alert policies."
  value       = module.riposte.notification_channel
}

output "service_accounts" {
  description = "Service accounts by use."
  value = {
    ingest    = module.riposte.ingest_service_account
    approve   = module.riposte.approve_service_account
    push      = module.riposte.push_service_account
    scheduler = module.riposte.scheduler_service_account
  }
}

output "secrets" {
  description = "Secret Manager secret ids."
  value = {
    signing_key         = module.riposte.signing_key_secret_id
    policy              = module.riposte.policy_secret_id
    falco_token         = module.riposte.falco_token_secret_id
    monitoring_password = module.riposte.monitoring_password_secret_id
  }
}

output "topics" {
  description = "Pub/Sub topics."
  value = {
    alerts      = module.riposte.alerts_topic
    dead_letter = module.riposte.dead_letter_topic
  }
}

output "artifact_registry_repository" {
  description = "Where to push the image (when create_artifact_registry)."
  value       = module.riposte.artifact_registry_repository
}
