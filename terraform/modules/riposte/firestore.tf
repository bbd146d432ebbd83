# The incident store: Firestore (native mode), database (default), shared by every instance of both
# services. Layout (shared/cloud/src/firestore.rs): incidents/{id} (plan, steps, approval), tallies/{id}
# (alert count, last seen: written by intake and a release closing the incident, never by the runner),
# incident_keys/{key} (the key's current incident and a copy of its tally), alert_log/{seq},
# rejections/{seq}.

resource "google_firestore_database" "riposte" {
  count = var.create_firestore_database ? 1 : 0

  project     = var.project_id
  name        = "(default)"
  location_id = local.firestore_location
  type        = "FIRESTORE_NATIVE"
  # riposte uses no read-write transactions: every read-modify-write is a commit with the
  # documents' updateTime as precondition, so no lock is ever held (a killed instance blocks
  # nothing) and the mode does not change its behaviour. Pessimistic is Firestore's default.
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

# `data` (and a key's `tally`) hold JSON text (up to ~1 MiB) and are never queried: indexing them
# only costs writes, on every alert for tallies. An empty index_config removes their single-field
# indexes.
resource "google_firestore_field" "unindexed_data" {
  for_each = {
    incidents     = "data"
    tallies       = "data"
    incident_keys = "tally"
    alert_log     = "data"
    rejections    = "data"
  }

  project    = var.project_id
  database   = "(default)"
  collection = each.key
  field      = each.value

  index_config {}

  depends_on = [google_firestore_database.riposte]
}

# Optional retention: riposte sets expire_at 90 days after an incident opened, on the incident, its
# tally and its key's document alike.
resource "google_firestore_field" "incident_ttl" {
  for_each = toset(var.incident_ttl ? ["incidents", "tallies", "incident_keys"] : [])

  project    = var.project_id
  database   = "(default)"
  collection = each.value
  field      = "expire_at"

  ttl_config {}

  depends_on = [google_firestore_database.riposte]
}

# Before tallies had documents of their own, the single TTL field was count-indexed.
moved {
  from = google_firestore_field.incident_ttl[0]
  to   = google_firestore_field.incident_ttl["incidents"]
}
