output "cluster" {
  description = "Name and location of the cluster (gcloud container clusters get-credentials NAME --region LOCATION)."
  value = {
    location = google_container_cluster.autopilot.location
    name     = google_container_cluster.autopilot.name
  }
}

output "workload_emails" {
  description = "Workload name -> Google service account email (the iam.gke.io/gcp-service-account annotation)."
  value       = { for name, sa in google_service_account.workload : name => sa.email }
}
