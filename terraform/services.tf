resource "google_project_service" "service" {
  for_each = toset(var.services)

  project = var.project_id
  service = each.value
  # Other projects' resources may depend on an API: never switch one off on destroy.
  disable_on_destroy = false
}
