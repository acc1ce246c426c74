output "service_names" {
  description = "Function name -> the Cloud Run service that serves it."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.service_config[0].service }
}

output "source_bucket" {
  description = "Bucket holding the functions' source archives."
  value       = google_storage_bucket.sources.name
}

output "urls" {
  description = "Function name -> URL."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.url }
}
