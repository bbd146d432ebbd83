# ---------------------------------------------------------------------------------------------------
# Where and what
# ---------------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Project riposte is deployed in: Cloud Run services, Firestore, Pub/Sub, Secret Manager, Scheduler, Monitoring channel."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run services (and, unless overridden, of Firestore, Scheduler and the Artifact Registry repository)."
  type        = string
}

variable "image" {
  description = "Container image of riposte (built from infra/Dockerfile), e.g. europe-west1-docker.pkg.dev/PROJECT/riposte/riposte:0.1.0. Both services run it."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name: services <prefix>-ingest and <prefix>-approve, service accounts, secrets, topics, jobs."
  type        = string
  default     = "riposte"

  validation {
    # Service account ids are at most 30 characters and <prefix>-scheduler is the longest.
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 2 to 20 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the Google APIs riposte needs in project_id (google_project_service, never disabled on destroy). Set false when APIs are managed elsewhere."
  type        = bool
  default     = true
}

variable "create_artifact_registry" {
  description = "Create a Docker Artifact Registry repository (<region>-docker.pkg.dev/<project>/<artifact_registry_repository_id>) to push the image to."
  type        = bool
  default     = false
}

variable "artifact_registry_repository_id" {
  description = "Id of the Artifact Registry repository created when create_artifact_registry is true."
  type        = string
  default     = "riposte"
}

# ---------------------------------------------------------------------------------------------------
# Cloud Run
# ---------------------------------------------------------------------------------------------------

variable "deletion_protection" {
  description = "Cloud Run deletion protection on both services: set false (and apply) before terraform destroy."
  type        = bool
  default     = true
}

variable "executor" {
  description = "RIPOSTE_EXECUTOR: google-cloud acts on Compute Engine (and GKE); dry-run records the requests each step would send and sends none."
  type        = string
  default     = "google-cloud"

  validation {
    condition     = contains(["google-cloud", "dry-run"], var.executor)
    error_message = "executor: google-cloud or dry-run."
  }
}

variable "cpu" {
  description = "CPU limit of each service instance."
  type        = string
  default     = "1"
}

variable "memory" {
  description = "Memory limit of each service instance."
  type        = string
  default     = "512Mi"
}

variable "cpu_always_allocated" {
  description = "Keep CPU allocated outside requests (instance-based billing). riposte answers an alert once it is durable and runs the steps after the answer; with request-based CPU those steps crawl until the next request or the Scheduler sweep (at most a minute later)."
  type        = bool
  default     = true
}

variable "ingest_min_instances" {
  description = "Minimum instances of the ingest service (1 avoids a cold start on the first alert)."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "Maximum instances of each service."
  type        = number
  default     = 10
}

variable "request_timeout_seconds" {
  description = "Cloud Run request timeout of both services; POST /tasks/sweep runs ready steps (snapshots, firewall operations) inside the request."
  type        = number
  default     = 300
}

variable "disable_invoker_iam_check" {
  description = "Make the public services public with invoker_iam_disabled instead of an allUsers run.invoker binding (for organisations whose Domain Restricted Sharing policy forbids allUsers)."
  type        = bool
  default     = false
}

variable "vpc_egress" {
  description = "Direct VPC egress for both services, e.g. to reach GKE private control-plane endpoints: network and subnetwork (names or self links), egress PRIVATE_RANGES_ONLY or ALL_TRAFFIC, network tags. null: no VPC access."
  type = object({
    network    = string
    subnetwork = string
    egress     = optional(string, "PRIVATE_RANGES_ONLY")
    tags       = optional(list(string), [])
  })
  default = null
}

variable "gke_private_endpoint" {
  description = "RIPOSTE_GKE_PRIVATE_ENDPOINT: reach GKE control planes on their private endpoint (needs vpc_egress)."
  type        = bool
  default     = false
}

variable "verify_keys" {
  description = "RIPOSTE_VERIFY_KEYS: public keys (kid.base64url, from riposte keygen) still accepted on approval links, for signing-key rotation."
  type        = list(string)
  default     = []
}

variable "extra_env" {
  description = "Further plain environment variables for both services, e.g. RIPOSTE_LOG = \"info,riposte_ingest=debug\", RIPOSTE_STEP_LEASE = \"2m\", RIPOSTE_SWEEP_INTERVAL = \"30s\"."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------------
# Policy, secrets, notifiers
# ---------------------------------------------------------------------------------------------------

variable "policy_yaml" {
  description = "Content of riposte's policy file, stored as a version of the <prefix>-policy secret. null: terraform creates the secret without a version; add one with gcloud secrets versions add before the services are created."
  type        = string
  default     = null
}

variable "notifier_secrets" {
  description = "Chat webhook URLs: environment variable name read by a notifier's url_env in the policy file => id of an existing Secret Manager secret in project_id holding the URL, e.g. { RIPOSTE_SLACK_URL = \"riposte-slack-url\" }. Both services get the variable and accessor on the secret."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.notifier_secrets) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "notifier_secrets keys are environment variable names (upper case, digits, underscores)."
  }
}

variable "monitoring_username" {
  description = "Basic-auth user of the Cloud Monitoring webhook channel (RIPOSTE_MONITORING_USER); the password is generated."
  type        = string
  default     = "riposte"
}

# ---------------------------------------------------------------------------------------------------
# Identity-Aware Proxy in front of the approve service (optional)
# ---------------------------------------------------------------------------------------------------

variable "enable_iap" {
  description = "The approve service sits behind an external Application Load Balancer with IAP: ingress becomes internal-and-load-balancer, run.invoker goes to the IAP service agent instead of allUsers, and RIPOSTE_IAP_AUDIENCE is set. The load balancer, serverless NEG and backend service are yours to create."
  type        = bool
  default     = false
}

variable "approve_iap_audience" {
  description = "RIPOSTE_IAP_AUDIENCE when enable_iap: the audience of IAP's signed header, /projects/PROJECT_NUMBER/global/backendServices/BACKEND_SERVICE_ID."
  type        = string
  default     = null
}

variable "approve_public_url" {
  description = "RIPOSTE_PUBLIC_URL, the base URL approval links point to (https). null: the approve service's run.app URL. Required with enable_iap (the load balancer's URL)."
  type        = string
  default     = null
}

variable "iap_accessors" {
  description = "With enable_iap: members (user:…, group:…) granted roles/iap.httpsResourceAccessor on the project's IAP web resources, i.e. who may reach the approval pages."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------------------
# IAM scope
# ---------------------------------------------------------------------------------------------------

variable "target_projects" {
  description = "Projects riposte acts in (the GKE clusters' and VMs' projects, and the Shared VPC host project where quarantine firewall rules are made): each gets the custom roles and their bindings. Empty: project_id only."
  type        = list(string)
  default     = []
}

variable "custom_role_prefix" {
  description = "Prefix of the custom role ids: <prefix>Ingest, <prefix>Approve, <prefix>Responder."
  type        = string
  default     = "riposte"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_.]{2,50}$", var.custom_role_prefix))
    error_message = "custom_role_prefix: letters, digits, underscores and dots, starting with a letter."
  }
}

variable "forensics_project" {
  description = "Project that policies name in snapshot_disks: {project: …} to keep snapshots out of reach of whoever controls the workloads' projects: both services get the <prefix>Forensics custom role there (create, label and read snapshots). Null: snapshots stay in the disks' own projects."
  type        = string
  default     = null

  validation {
    condition     = var.forensics_project == null || can(regex("^([a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.forensics_project))
    error_message = "forensics_project: a project id (6 to 30 lower-case letters, digits and hyphens, starting with a letter)."
  }
}

variable "evidence_bucket" {
  description = "Name of the Cloud Storage bucket to create for collect_evidence (policies then write collect_evidence: {bucket: <this name>}): a retention policy, uniform access, no public access, and create/read of objects for both services only. Null: no bucket."
  type        = string
  default     = null

  validation {
    condition     = var.evidence_bucket == null || can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", var.evidence_bucket))
    error_message = "evidence_bucket: 3 to 63 lower-case letters, digits, hyphens, underscores and dots, starting and ending with a letter or digit."
  }
}

variable "evidence_retention_days" {
  description = "Days an evidence object cannot be deleted or overwritten (the bucket's retention policy)."
  type        = number
  default     = 90

  validation {
    condition     = var.evidence_retention_days >= 1 && var.evidence_retention_days <= 3650
    error_message = "evidence_retention_days: 1 to 3650."
  }
}

variable "responders" {
  description = "Members (user:…, group:…) who may run riposte incident release: granted the <prefix>Responder custom role on every target project and roles/datastore.user on project_id (the incident store)."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------------------
# Firestore
# ---------------------------------------------------------------------------------------------------

variable "firestore_location" {
  description = "Location of the (default) Firestore database (a region such as europe-west1, or a multi-region such as eur3). null: region. Fixed once created."
  type        = string
  default     = null
}

variable "create_firestore_database" {
  description = "Create the (default) Firestore database (native mode, pessimistic concurrency, PITR, delete protection). false: it exists already, in native mode."
  type        = bool
  default     = true
}

variable "incident_ttl" {
  description = "Let Firestore delete incidents, their tallies and their keys' documents after their expire_at (riposte sets it 90 days after the incident opened) with TTL policies."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------------
# Log sink → Pub/Sub → POST /v1/pubsub
# ---------------------------------------------------------------------------------------------------

variable "log_sink_projects" {
  description = "Projects whose logs are routed to riposte's topic (where the GKE clusters run). Empty: project_id only."
  type        = list(string)
  default     = []
}

variable "falco_namespace" {
  description = "Kubernetes namespace of the Falco DaemonSet: its containers' JSON alerts on standard output are routed to riposte."
  type        = string
  default     = "falco"
}

variable "falco_container" {
  description = "Name of the Falco container in the Falco pods."
  type        = string
  default     = "falco"
}

variable "audit_exec_methods" {
  description = "GKE audit log methodName values routed to riposte (a person exec-ing into a pod). kubectl 1.30+ execs over WebSocket, which the API server may record as io.k8s.core.v1.pods.exec.get (in Data Access audit logs, off by default)."
  type        = list(string)
  default     = ["io.k8s.core.v1.pods.exec.create", "io.k8s.core.v1.pods.exec.get"]
}

variable "extra_log_filter" {
  description = "An extra Cloud Logging filter OR-ed into the sink's filter (e.g. gce_instance entries riposte should see). null: none."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------------
# Cloud Monitoring, Cloud Scheduler
# ---------------------------------------------------------------------------------------------------

variable "create_example_alert_policy" {
  description = "Create the example alert policy \"Node CPU pegged (possible cryptomining)\" (GKE node VMs above 95 % CPU for 10 minutes) notifying riposte's webhook channel; it matches the example policy file's node-cpu-pegged policy."
  type        = bool
  default     = true
}

variable "sweep_schedule" {
  description = "Cron schedule (UTC) of the Cloud Scheduler jobs POSTing /tasks/sweep on both services."
  type        = string
  default     = "* * * * *"
}

variable "scheduler_region" {
  description = "Region of the Cloud Scheduler jobs. null: region."
  type        = string
  default     = null
}

variable "metrics_sidecar_image" {
  description = "Google Cloud Managed Service for Prometheus sidecar for Cloud Run (us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:VERSION, preferably pinned by digest). When set, both services serve GET /metrics on 127.0.0.1:9464 and the sidecar writes the series to Cloud Monitoring every 30 s (their accounts gain roles/monitoring.metricWriter). Null: no metrics are collected."
  type        = string
  default     = null
}
