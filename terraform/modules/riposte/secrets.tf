# Secrets. Values generated here (tokens, passwords) are stored in the Terraform state too: keep the
# state in a bucket only the deployers can read.
#
#   <prefix>-signing-key          RIPOSTE_SIGNING_KEY, both services. Created empty: its value
#                                 comes from `riposte keygen` and is added with
#                                 `gcloud secrets versions add` (docs/DEPLOY.md), so the private
#                                 key never passes through Terraform.
#   <prefix>-policy               the policy file, mounted at /etc/riposte/policy.yaml, both
#                                 services (version from var.policy_yaml, or added with gcloud).
#   <prefix>-falco-token          RIPOSTE_FALCO_TOKEN, ingest (Falcosidekick's bearer token).
#   <prefix>-monitoring-password  RIPOSTE_MONITORING_PASSWORD, ingest (the webhook channel's
#                                 basic-auth password).
#   var.notifier_secrets          chat webhook URLs, both services (existing secrets).

locals {
  # Every service reads its secrets as "latest": a new version takes effect on the next revision.
  ingest_secret_env = merge(
    {
      RIPOSTE_SIGNING_KEY         = google_secret_manager_secret.signing_key.secret_id
      RIPOSTE_FALCO_TOKEN         = google_secret_manager_secret.falco_token.secret_id
      RIPOSTE_MONITORING_PASSWORD = google_secret_manager_secret.monitoring_password.secret_id
    },
    var.notifier_secrets,
  )
  approve_secret_env = merge(
    {
      RIPOSTE_SIGNING_KEY = google_secret_manager_secret.signing_key.secret_id
    },
    var.notifier_secrets,
  )

  # Secret ids each service may read (the policy file is a volume, not an env var).
  ingest_secrets  = toset(concat(values(local.ingest_secret_env), [google_secret_manager_secret.policy.secret_id], local.metrics_secrets))
  approve_secrets = toset(concat(values(local.approve_secret_env), [google_secret_manager_secret.policy.secret_id], local.metrics_secrets))
}

resource "google_secret_manager_secret" "signing_key" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-signing-key"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "policy" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-policy"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "policy" {
  count = var.policy_yaml == null ? 0 : 1

  secret      = google_secret_manager_secret.policy.id
  secret_data = var.policy_yaml
}

resource "random_password" "falco_token" {
  length = 48
  # Falcosidekick's WEBHOOK_CUSTOMHEADERS is "Name:value,Name:value": the token must hold neither
  # ':' nor ','. 48 alphanumerics are ~285 bits.
  special = false
}

resource "google_secret_manager_secret" "falco_token" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-falco-token"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "falco_token" {
  secret      = google_secret_manager_secret.falco_token.id
  secret_data = random_password.falco_token.result
}

resource "random_password" "monitoring" {
  length  = 40
  special = false
}

resource "google_secret_manager_secret" "monitoring_password" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-monitoring-password"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "monitoring_password" {
  secret      = google_secret_manager_secret.monitoring_password.id
  secret_data = random_password.monitoring.result
}

resource "google_secret_manager_secret_iam_member" "ingest" {
  for_each = local.ingest_secrets

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.ingest.member
}

resource "google_secret_manager_secret_iam_member" "approve" {
  for_each = local.approve_secrets

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.approve.member
}
