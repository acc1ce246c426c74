resource "google_firestore_database" "default" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.location
  type                              = "FIRESTORE_NATIVE"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = var.protect ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.protect ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # Removing the database from Terraform never deletes the data.
  deletion_policy = "ABANDON"
}

# Composite indexes of schemas/firestore.indexes.json. query_scope COLLECTION_GROUP serves queries over
# every collection of that id (collection_group("audit_entries") across tenants).
resource "google_firestore_index" "composite" {
  for_each = var.indexes

  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = each.value.collection
  query_scope = each.value.query_scope

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.field_path
      order        = fields.value.order
      array_config = fields.value.array_config
    }
  }
}

# Field overrides (exempted from indexing, or indexed differently) and TTL policies. A TTL policy
# deletes a document some time (typically within 24 hours) after its timestamp has passed.
resource "google_firestore_field" "field" {
  for_each = var.fields

  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = each.value.collection
  field      = each.value.field

  dynamic "index_config" {
    for_each = each.value.indexes == null ? [] : [each.value.indexes]
    content {
      dynamic "indexes" {
        for_each = index_config.value
        content {
          order        = indexes.value.order
          array_config = indexes.value.array_config
          query_scope  = indexes.value.query_scope
        }
      }
    }
  }

  dynamic "ttl_config" {
    for_each = each.value.ttl ? [true] : []
    content {}
  }
}
