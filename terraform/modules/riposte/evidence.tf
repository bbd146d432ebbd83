# The evidence bucket of collect_evidence (evidence_bucket): objects under riposte/<incident>/…,
# kept for evidence_retention_days by a retention policy (no one, riposte included, can delete or
# overwrite one before then), reachable only by the two services, which may create objects and
# read them back (a retried step hashes what an earlier attempt stored) and nothing else. The
# policy file names the bucket: collect_evidence: {bucket: <evidence_bucket>}.

locals {
  # riposte_core::action::EVIDENCE_BUCKET_PERMISSIONS, checked by tests/e2e/terraform.rs.
  evidence_bucket_permissions = [
    "storage.objects.create",
    "storage.objects.get",
  ]

  evidence_writers = var.evidence_bucket == null ? {} : {
    ingest  = google_service_account.ingest.member
    approve = google_service_account.approve.member
  }
}

resource "google_storage_bucket" "evidence" {
  #checkov:skip=CKV_GCP_78:Object versioning cannot be enabled together with a retention policy; the retention policy is what keeps evidence from being overwritten or deleted.
  #checkov:skip=CKV_GCP_62:Access logs of the bucket go to Cloud Audit Logs (Data Access logs for Cloud Storage), an organisation-wide choice; a usage-log bucket is not created here.
  count = var.evidence_bucket == null ? 0 : 1

  project                     = var.project_id
  name                        = var.evidence_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  retention_policy {
    retention_period = var.evidence_retention_days * 86400
  }
}

resource "google_project_iam_custom_role" "evidence" {
  count = var.evidence_bucket == null ? 0 : 1

  project     = var.project_id
  role_id     = "${var.custom_role_prefix}Evidence"
  title       = "riposte evidence (write-once objects)"
  description = "Create evidence objects and read them back; granted on the evidence bucket only."
  permissions = local.evidence_bucket_permissions
}

resource "google_storage_bucket_iam_member" "evidence_writers" {
  for_each = local.evidence_writers

  bucket = google_storage_bucket.evidence[0].name
  role   = google_project_iam_custom_role.evidence[0].id
  member = each.value
}
