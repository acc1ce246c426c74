provider "google" {
  project = var.project_id
  region  = var.region

  # The Billing Budgets and Identity Toolkit APIs refuse user credentials without a quota project:
  # bill those calls to the platform's own project.
  billing_project       = var.project_id
  user_project_override = true

  default_labels = local.labels
}
