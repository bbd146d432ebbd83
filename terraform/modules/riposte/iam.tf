# Least privilege: each service account holds exactly what its service does.
#
#   ingest SA     <prefix>Ingest custom role (the automatic, safe actions) on every target project;
#                 roles/datastore.user (the incident store); accessor on its own secrets. Nothing else.
#   approve SA    <prefix>Approve custom role (safe + destructive actions) on every target project;
#                 roles/datastore.user; accessor on its own secrets.
#   push SA       nothing: Pub/Sub signs an OIDC token as this account, riposte verifies it.
#   scheduler SA  run.invoker on both services: Cloud Scheduler signs an OIDC token as this account.
#   responders    <prefix>Responder custom role (riposte incident release) + roles/datastore.user.
#   forensics_project (optional): <prefix>Forensics custom role for both services, where
#                 snapshot_disks: {project: …} creates the snapshots (the source disks' createSnapshot
#                 permission stays in the target projects' roles).
#
# On GKE, IAM `container.*` permissions authorize Kubernetes API calls alongside RBAC (either one
# allowing a call is enough): `container.pods.update` lets the account label any pod in the
# cluster's project without a RoleBinding. That is why the GKE actions need no RBAC manifests, and
# why these roles are bound only on the projects riposte must act in.
#
# The four lists below are literal and sorted: a Rust test parses this block and compares it with
# the permissions the actions declare (riposte_core::action::Action::permissions).
locals {
  ingest_action_permissions = [
    "compute.disks.createSnapshot",
    "compute.firewalls.create",
    "compute.firewalls.get",
    "compute.globalOperations.get",
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setLabels",
    "compute.instances.setTags",
    "compute.networks.updatePolicy",
    "compute.regionOperations.get",
    "compute.snapshots.create",
    "compute.snapshots.get",
    "compute.snapshots.setLabels",
    "compute.zoneOperations.get",
    "container.clusters.get",
    "container.events.list",
    "container.networkPolicies.create",
    "container.networkPolicies.get",
    "container.nodes.get",
    "container.nodes.list",
    "container.nodes.update",
    "container.pods.get",
    "container.pods.getLogs",
    "container.pods.update",
  ]

  approve_action_permissions = [
    "compute.disks.createSnapshot",
    "compute.firewalls.create",
    "compute.firewalls.get",
    "compute.globalOperations.get",
    "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.update",
    "compute.instances.delete",
    "compute.instances.deleteAccessConfig",
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setLabels",
    "compute.instances.setTags",
    "compute.networks.updatePolicy",
    "compute.regionOperations.get",
    "compute.snapshots.create",
    "compute.snapshots.get",
    "compute.snapshots.setLabels",
    "compute.zoneOperations.get",
    "container.clusters.get",
    "container.cronJobs.delete",
    "container.daemonSets.delete",
    "container.deployments.delete",
    "container.events.list",
    "container.jobs.delete",
    "container.jobs.get",
    "container.networkPolicies.create",
    "container.networkPolicies.get",
    "container.nodes.get",
    "container.nodes.update",
    "container.pods.delete",
    "container.pods.evict",
    "container.pods.get",
    "container.pods.getLogs",
    "container.pods.list",
    "container.pods.update",
    "container.replicaSets.delete",
    "container.replicaSets.get",
    "container.statefulSets.delete",
  ]

  # riposte_core::action::FORENSICS_PROJECT_PERMISSIONS
  forensics_project_permissions = [
    "compute.globalOperations.get",
    "compute.snapshots.create",
    "compute.snapshots.get",
    "compute.snapshots.setLabels",
  ]

  release_permissions = [
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setLabels",
    "compute.instances.setTags",
    "compute.zoneOperations.get",
    "container.clusters.get",
    "container.networkPolicies.delete",
    "container.nodes.get",
    "container.nodes.update",
    "container.pods.get",
    "container.pods.update",
  ]
}

locals {
  responder_bindings = {
    for pair in setproduct(local.target_projects, var.responders) : "${pair[0]}/${pair[1]}" => {
      project = pair[0]
      member  = pair[1]
    }
  }
}

# ---------------------------------------------------------------------------------------------------
# Service accounts
# ---------------------------------------------------------------------------------------------------

resource "google_service_account" "ingest" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-ingest"
  display_name = "riposte ingest"
  description  = "riposte's ingest service: alert intake and the automatic (safe) incident-response steps."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "approve" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-approve"
  display_name = "riposte approve"
  description  = "riposte's approve service: approval pages and the destructive steps, after a human approval."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "riposte Pub/Sub push"
  description  = "Identity of the OIDC token Pub/Sub presents when pushing log entries to riposte's /v1/pubsub. Holds no role."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "riposte sweep scheduler"
  description  = "Identity of the OIDC token Cloud Scheduler presents on riposte's POST /tasks/sweep."

  depends_on = [google_project_service.apis]
}

# Projects created before 8 April 2021 need this for Pub/Sub to sign the push's OIDC token; later
# ones have it through the service agent role. Scoped to the push account only.
resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------------------------------------------
# Custom roles: one per service, in every project riposte acts in (a project-level custom role can
# only be granted in its own project).
# ---------------------------------------------------------------------------------------------------

resource "google_project_iam_custom_role" "ingest" {
  for_each = local.target_projects

  project     = each.value
  role_id     = "${var.custom_role_prefix}Ingest"
  title       = "riposte ingest (automatic containment)"
  description = "What riposte's automatic, safe incident-response actions call: snapshot, label, quarantine, forensic SSH rule, cordon, collect a pod's evidence, label and isolate pods."
  permissions = local.ingest_action_permissions
}

resource "google_project_iam_custom_role" "approve" {
  for_each = local.target_projects

  project     = each.value
  role_id     = "${var.custom_role_prefix}Approve"
  title       = "riposte approve (containment and approved destructive steps)"
  description = "riposte's safe actions plus the destructive ones that run only after a human approval: drain, delete pod or workload, remove external IP, abandon or delete the VM."
  permissions = local.approve_action_permissions
}

resource "google_project_iam_custom_role" "responder" {
  for_each = length(var.responders) > 0 ? local.target_projects : toset([])

  project     = each.value
  role_id     = "${var.custom_role_prefix}Responder"
  title       = "riposte responder (incident release)"
  description = "What riposte incident release needs to undo the reversible containment: remove quarantine tags and labels, uncordon, unlabel pods, delete the isolation NetworkPolicy."
  permissions = local.release_permissions
}

resource "google_project_iam_member" "ingest_actions" {
  for_each = local.target_projects

  project = each.value
  role    = google_project_iam_custom_role.ingest[each.value].name
  member  = google_service_account.ingest.member
}

resource "google_project_iam_member" "approve_actions" {
  for_each = local.target_projects

  project = each.value
  role    = google_project_iam_custom_role.approve[each.value].name
  member  = google_service_account.approve.member
}

resource "google_project_iam_member" "responder_actions" {
  for_each = local.responder_bindings

  project = each.value.project
  role    = google_project_iam_custom_role.responder[each.value.project].name
  member  = each.value.member
}

# Evidence kept in a separate project: only what creating snapshots there needs, for both services
# (an approved policy may run snapshot_disks too).
resource "google_project_iam_custom_role" "forensics" {
  count = var.forensics_project == null ? 0 : 1

  project     = var.forensics_project
  role_id     = "${var.custom_role_prefix}Forensics"
  title       = "riposte forensics (snapshots kept in this project)"
  description = "Create, label and read the disk snapshots riposte takes of compromised VMs in other projects."
  permissions = local.forensics_project_permissions
}

resource "google_project_iam_member" "forensics_snapshots" {
  for_each = var.forensics_project == null ? {} : {
    ingest  = google_service_account.ingest.member
    approve = google_service_account.approve.member
  }

  project = var.forensics_project
  role    = google_project_iam_custom_role.forensics[0].name
  member  = each.value
}

# ---------------------------------------------------------------------------------------------------
# The incident store (Firestore in project_id)
# ---------------------------------------------------------------------------------------------------

resource "google_project_iam_member" "ingest_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.ingest.member
}

resource "google_project_iam_member" "approve_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.approve.member
}

# riposte incident list|show|release read (and release records) incidents in Firestore directly.
resource "google_project_iam_member" "responder_firestore" {
  for_each = toset(var.responders)

  project = var.project_id
  role    = "roles/datastore.user"
  member  = each.value
}

# ---------------------------------------------------------------------------------------------------
# Who may reach the approval pages through IAP (enable_iap)
# ---------------------------------------------------------------------------------------------------

resource "google_iap_web_iam_member" "approvers" {
  for_each = var.enable_iap ? toset(var.iap_accessors) : toset([])

  project = var.project_id
  role    = "roles/iap.httpsResourceAccessor"
  member  = each.value

  depends_on = [google_project_service.apis]
}
