# The incident store: Firestore (native mode), database (default), shared by every instance of both
# services. Layout (shared/cloud/src/firestore.rs): incidents/{id}, incident_keys/{key},
# alert_log/{seq}, rejections/{seq}.

resource "google_firestore_database" "riposte" {
  count = var.create_firestore_database ? 1 : 0

  project     = var.project_id
  name        = "(default)"
  location_id = local.firestore_location
  type        = "FIRESTORE_NATIVE"
  # riposte's transactions (beginTransaction → batchGet → commit, retried on ABORTED) are tested
  # against the emulator, which runs in pessimistic mode.
  concurrency_mode                  = "PESSIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # terraform destroy forgets the database and leaves it (and the incidents) in place.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.apis]
}

# The sweep asks for `active == true` ordered by `id` (FirestoreStore::with_work): an equality on
# one field ordered by another needs a composite index in Firestore (the emulator does not check).
resource "google_firestore_index" "active_incidents" {
  project     = var.project_id
  database    = "(default)"
  collection  = "incidents"
  query_scope = "COLLECTION"

  fields {
    field_path = "active"
    order      = "ASCENDING"
  }

  fields {
    field_path = "id"
    order      = "ASCENDING"
  }

  depends_on = [google_firestore_database.riposte]
}

# `data` holds each document's JSON text (up to ~1 MiB) and is never queried: indexing it only costs
# writes. An empty index_config removes its single-field indexes.
resource "google_firestore_field" "unindexed_data" {
  for_each = toset(["incidents", "alert_log", "rejections"])

  project    = var.project_id
  database   = "(default)"
  collection = each.value
  field      = "data"

  index_config {}

  depends_on = [google_firestore_database.riposte]
}

# Optional retention: riposte sets expire_at 90 days after an incident opened.
resource "google_firestore_field" "incident_ttl" {
  count = var.incident_ttl ? 1 : 0

  project    = var.project_id
  database   = "(default)"
  collection = "incidents"
  field      = "expire_at"

  ttl_config {}

  depends_on = [google_firestore_database.riposte]
}
