# The two Cloud Run services. Environment: see README.md "Configuration" and
# functions/riposte/src/config.rs for every variable riposte reads.

locals {
  common_env = merge(
    {
      RIPOSTE_STORE             = "firestore"
      RIPOSTE_FIRESTORE_PROJECT = var.project_id
      GOOGLE_CLOUD_PROJECT      = var.project_id
      RIPOSTE_EXECUTOR          = var.executor
      RIPOSTE_LOG_FORMAT        = "json"
      # Approval links point at the approve service (or the load balancer in front of it).
      RIPOSTE_PUBLIC_URL = local.public_url
      # Only Cloud Scheduler's token for this account may call POST /tasks/sweep.
      RIPOSTE_SWEEP_INVOKER        = google_service_account.scheduler.email
      RIPOSTE_POLICY               = "${local.policy_dir}/${local.policy_file}"
      RIPOSTE_GKE_PRIVATE_ENDPOINT = tostring(var.gke_private_endpoint)
    },
    length(var.verify_keys) > 0 ? { RIPOSTE_VERIFY_KEYS = join(",", var.verify_keys) } : {},
    local.metrics_env,
  )

  # extra_env comes first: it cannot override what the module sets.
  ingest_env = merge(var.extra_env, local.common_env, {
    RIPOSTE_ROLE            = "ingest"
    RIPOSTE_SWEEP_AUDIENCE  = local.ingest_url
    RIPOSTE_MONITORING_USER = var.monitoring_username
    # Pub/Sub push: a Google-signed OIDC token for this audience, issued to the push account.
    RIPOSTE_PUBSUB_AUDIENCE = local.pubsub_push_endpoint
    RIPOSTE_PUBSUB_INVOKER  = google_service_account.push.email
  })

  approve_env = merge(var.extra_env, local.common_env,
    {
      RIPOSTE_ROLE           = "approve"
      RIPOSTE_SWEEP_AUDIENCE = local.approve_url
    },
    var.enable_iap ? { RIPOSTE_IAP_AUDIENCE = var.approve_iap_audience } : {},
  )

  # riposte reads its policy once, at start: a new policy must start a new revision. Labelling each
  # revision with the policy's hash makes a policy change (through var.policy_yaml) do that.
  revision_labels = merge(var.labels,
    var.policy_yaml == null ? {} : { "riposte-policy" = substr(sha256(var.policy_yaml), 0, 16) },
  )

  # Every public entry point is authenticated by riposte itself; see main.tf.
  ingest_public  = !var.disable_invoker_iam_check
  approve_public = !var.enable_iap && !var.disable_invoker_iam_check
}

resource "google_cloud_run_v2_service" "ingest" {
  project             = var.project_id
  name                = local.ingest_name
  location            = var.region
  description         = "riposte ingest: alert intake (Falcosidekick, Cloud Monitoring, Pub/Sub push) and the automatic containment steps."
  labels              = var.labels
  deletion_protection = var.deletion_protection
  # Falcosidekick and Cloud Monitoring webhooks cannot present Google identity tokens.
  ingress              = "INGRESS_TRAFFIC_ALL"
  invoker_iam_disabled = var.disable_invoker_iam_check

  template {
    labels                           = local.revision_labels
    service_account                  = google_service_account.ingest.email
    timeout                          = "${var.request_timeout_seconds}s"
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = var.ingest_min_instances
      max_instance_count = var.max_instances
    }

    dynamic "vpc_access" {
      for_each = var.vpc_egress == null ? [] : [var.vpc_egress]
      content {
        egress = vpc_access.value.egress
        network_interfaces {
          network    = vpc_access.value.network
          subnetwork = vpc_access.value.subnetwork
          tags       = vpc_access.value.tags
        }
      }
    }

    dynamic "volumes" {
      for_each = local.metrics_enabled ? [1] : []
      content {
        name = "metrics-scrape"
        secret {
          secret       = google_secret_manager_secret.metrics_config[0].secret_id
          default_mode = 292
          items {
            version = google_secret_manager_secret_version.metrics_config[0].version
            path    = "config.yaml"
            mode    = 292
          }
        }
      }
    }

    volumes {
      name = "policy"
      secret {
        secret       = google_secret_manager_secret.policy.secret_id
        default_mode = 292 # 0444: the image runs as uid 65532
        items {
          version = "latest"
          path    = local.policy_file
          mode    = 292
        }
      }
    }

    containers {
      name  = "riposte"
      image = var.image
      args  = ["serve"]

      ports {
        name           = "http1"
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = !var.cpu_always_allocated
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.ingest_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.ingest_secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      volume_mounts {
        name       = "policy"
        mount_path = local.policy_dir
      }

      # serve checks its configuration, reads its secrets and reaches Firestore before it listens.
      startup_probe {
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 30
        http_get {
          path = "/healthz"
          port = 8080
        }
      }

      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
          port = 8080
        }
      }
    }

    # Scrapes riposte's loopback metrics port into Cloud Monitoring (prometheus.tf).
    dynamic "containers" {
      for_each = local.metrics_enabled ? [1] : []
      content {
        name       = "metrics"
        image      = var.metrics_sidecar_image
        depends_on = ["riposte"]
        volume_mounts {
          name       = "metrics-scrape"
          mount_path = "/etc/rungmp"
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  # A revision starts only when its account can read every secret it names and the store exists.
  depends_on = [
    google_secret_manager_secret_iam_member.ingest,
    google_secret_manager_secret_version.policy,
    google_secret_manager_secret_version.falco_token,
    google_secret_manager_secret_version.monitoring_password,
    google_project_iam_member.ingest_firestore,
    google_firestore_database.riposte,
    google_firestore_index.active_incidents,
  ]
}

resource "google_cloud_run_v2_service" "approve" {
  project             = var.project_id
  name                = local.approve_name
  location            = var.region
  description         = "riposte approve: approval pages and the destructive steps, after a human approval."
  labels              = var.labels
  deletion_protection = var.deletion_protection
  # Behind IAP only the load balancer (and, as internal traffic, Cloud Scheduler) may reach it.
  ingress              = var.enable_iap ? "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" : "INGRESS_TRAFFIC_ALL"
  invoker_iam_disabled = local.approve_public && var.disable_invoker_iam_check

  template {
    labels                           = local.revision_labels
    service_account                  = google_service_account.approve.email
    timeout                          = "${var.request_timeout_seconds}s"
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    dynamic "vpc_access" {
      for_each = var.vpc_egress == null ? [] : [var.vpc_egress]
      content {
        egress = vpc_access.value.egress
        network_interfaces {
          network    = vpc_access.value.network
          subnetwork = vpc_access.value.subnetwork
          tags       = vpc_access.value.tags
        }
      }
    }

    dynamic "volumes" {
      for_each = local.metrics_enabled ? [1] : []
      content {
        name = "metrics-scrape"
        secret {
          secret       = google_secret_manager_secret.metrics_config[0].secret_id
          default_mode = 292
          items {
            version = google_secret_manager_secret_version.metrics_config[0].version
            path    = "config.yaml"
            mode    = 292
          }
        }
      }
    }

    volumes {
      name = "policy"
      secret {
        secret       = google_secret_manager_secret.policy.secret_id
        default_mode = 292
        items {
          version = "latest"
          path    = local.policy_file
          mode    = 292
        }
      }
    }

    containers {
      name  = "riposte"
      image = var.image
      args  = ["serve"]

      ports {
        name           = "http1"
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = !var.cpu_always_allocated
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.approve_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.approve_secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      volume_mounts {
        name       = "policy"
        mount_path = local.policy_dir
      }

      startup_probe {
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 30
        http_get {
          path = "/healthz"
          port = 8080
        }
      }

      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
          port = 8080
        }
      }
    }

    # Scrapes riposte's loopback metrics port into Cloud Monitoring (prometheus.tf).
    dynamic "containers" {
      for_each = local.metrics_enabled ? [1] : []
      content {
        name       = "metrics"
        image      = var.metrics_sidecar_image
        depends_on = ["riposte"]
        volume_mounts {
          name       = "metrics-scrape"
          mount_path = "/etc/rungmp"
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    precondition {
      condition     = !var.enable_iap || (var.approve_iap_audience != null && var.approve_public_url != null)
      error_message = "enable_iap needs approve_iap_audience (/projects/NUMBER/global/backendServices/ID) and approve_public_url (the load balancer's https URL)."
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.approve,
    google_secret_manager_secret_version.policy,
    google_project_iam_member.approve_firestore,
    google_firestore_database.riposte,
    google_firestore_index.active_incidents,
  ]
}

# ---------------------------------------------------------------------------------------------------
# Who may invoke
# ---------------------------------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "ingest_public" {
  count = local.ingest_public ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.ingest.name
  role     = "roles/run.invoker"
  # Falcosidekick and Cloud Monitoring cannot present Google identity tokens: riposte checks the
  # bearer token, basic auth, Pub/Sub's and Cloud Scheduler's OIDC tokens itself.
  member = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "approve_public" {
  count = local.approve_public ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.approve.name
  role     = "roles/run.invoker"
  # Approvers' browsers: every link is an EdDSA-signed, expiring, single-decision token.
  member = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "approve_iap" {
  count = var.enable_iap ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.approve.name
  role     = "roles/run.invoker"
  member   = local.iap_service_agent
}

resource "google_cloud_run_v2_service_iam_member" "ingest_scheduler" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.ingest.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_v2_service_iam_member" "approve_scheduler" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.approve.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}
