# The platform's APIs. The bootstrap stage (bootstrap/) has enabled the ones Terraform and the IAM
# grants need first (Service Usage, Cloud Resource Manager, IAM, Storage, Pub/Sub, Cloud Tasks).
resource "google_project_service" "service" {
  for_each = toset(var.services)

  project = var.project_id
  service = each.value
  # Other projects' resources may depend on an API: never switch one off on destroy.
  disable_on_destroy = false
}

# Enabling an API returns before every Google front end honours it: the first resources of a new API
# fail with "API not enabled" or "permission denied" for a minute or two. Everything waits for this.
resource "time_sleep" "apis_ready" {
  create_duration = "90s"

  triggers = {
    services = join(",", sort(var.services))
  }

  depends_on = [google_project_service.service]
}
