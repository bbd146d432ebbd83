variable "project_id" {
  description = "Project to deploy riposte in."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run services, Firestore, Scheduler and the image repository."
  type        = string
  default     = "europe-west1"
}

variable "image" {
  description = "riposte image built from infra/Dockerfile, e.g. europe-west1-docker.pkg.dev/PROJECT/riposte/riposte:0.1.0."
  type        = string
}

variable "create_artifact_registry" {
  description = "Create the Docker repository <region>-docker.pkg.dev/<project>/riposte to push the image to."
  type        = bool
  default     = true
}

variable "executor" {
  description = "google-cloud (act) or dry-run (record the requests, send none)."
  type        = string
  default     = "google-cloud"
}

variable "deletion_protection" {
  description = "Cloud Run deletion protection; set false and apply before terraform destroy."
  type        = bool
  default     = true
}

variable "policy_file" {
  description = "Path of the policy file to store in the policy secret (e.g. ../../../infra/examples/policy.yaml). null: add it with gcloud secrets versions add."
  type        = string
  default     = null
}

variable "notifier_secrets" {
  description = "Chat webhook env var (a notifier's url_env) => existing Secret Manager secret id holding the URL."
  type        = map(string)
  default     = {}
}

variable "target_projects" {
  description = "Projects riposte acts in (GKE clusters, VMs, Shared VPC host). Empty: project_id."
  type        = list(string)
  default     = []
}

variable "forensics_project" {
  description = "Project where snapshot_disks: {project: …} keeps snapshots. Null: the disks' own projects."
  type        = string
  default     = null
}

variable "evidence_bucket" {
  description = "Name of the bucket to create for collect_evidence. Null: none."
  type        = string
  default     = null
}

variable "metrics_sidecar_image" {
  description = "Managed Service for Prometheus sidecar image for Cloud Run: riposte's metrics go to Cloud Monitoring. Null: none."
  type        = string
  default     = null
}

variable "responders" {
  description = "Members allowed to run riposte incident release (user:…, group:…)."
  type        = list(string)
  default     = []
}

variable "create_example_alert_policy" {
  description = "Create the example \"Node CPU pegged (possible cryptomining)\" alert policy notifying riposte."
  type        = bool
  default     = true
}

variable "enable_iap" {
  description = "Put the approve service behind your IAP-enabled load balancer."
  type        = bool
  default     = false
}

variable "approve_iap_audience" {
  description = "With enable_iap: /projects/PROJECT_NUMBER/global/backendServices/BACKEND_SERVICE_ID."
  type        = string
  default     = null
}

variable "approve_public_url" {
  description = "With enable_iap: the load balancer's https URL of the approval pages."
  type        = string
  default     = null
}

variable "iap_accessors" {
  description = "With enable_iap: who may open the approval pages (user:…, group:…)."
  type        = list(string)
  default     = []
}

variable "labels" {
  description = "Labels on every resource."
  type        = map(string)
  default     = { app = "riposte" }
}
