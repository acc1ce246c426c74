output "build_service_account" {
  description = "The account Cloud Build builds the functions as."
  value       = google_service_account.build.email
}

output "service_names" {
  description = "Function name -> the Cloud Run service that serves it."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.service_config[0].service }
}

output "source_bucket" {
  description = "Bucket holding the functions' source archives."
  value       = google_storage_bucket.sources.name
}

output "urls" {
  description = "Function name -> URL. Known only once every run.invoker grant exists: a push subscription (or anything else) created from it never calls a function that would refuse it."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.url }

  depends_on = [google_cloud_run_v2_service_iam_member.invoker, google_cloud_run_v2_service_iam_member.public]
}
