output "database" {
  description = "The (default) database's name."
  value       = google_firestore_database.default.name
}

output "index_ids" {
  description = "Composite index key -> id."
  value       = { for key, ix in google_firestore_index.composite : key => ix.id }
}
