terraform {
  # optional() object attributes with defaults (vpc_egress).
  required_version = ">= 1.3"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.10: deletion_protection and invoker_iam_disabled on google_cloud_run_v2_service,
      # concurrency_mode / point-in-time recovery / delete protection on google_firestore_database.
      version = ">= 6.10"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5"
    }
  }
}
