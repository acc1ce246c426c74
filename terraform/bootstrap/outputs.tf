output "deployer_email" {
  description = "The deployer service account: impersonate it to apply the platform stage (GOOGLE_IMPERSONATE_SERVICE_ACCOUNT)."
  value       = google_service_account.deployer.email
}

output "service_agents" {
  description = "API -> its service agent's email, created ahead of the platform stage's grants."
  value       = { for api, identity in google_project_service_identity.agent : api => identity.email }
}

output "state_bucket" {
  description = "The bucket of every Terraform state of this environment (environments/<env>.gcs.tfbackend)."
  value       = google_storage_bucket.state.name
}
