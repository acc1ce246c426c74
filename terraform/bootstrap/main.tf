# Bootstrap: what must exist before the platform stage (../) can plan and apply on an empty project.
# Applied once per environment by a project owner (README.md, "First apply"); every later change to
# the platform is applied by the deployer service account created here.

resource "google_project_service" "foundation" {
  for_each = toset(local.foundation_services)

  project = var.project_id
  service = each.value
  # The platform stage and other projects' resources depend on these: never switch one off.
  disable_on_destroy = false
}

# Enabling an API returns before every Google front end honours it: wait before using them.
resource "time_sleep" "apis_ready" {
  create_duration = "60s"

  depends_on = [google_project_service.foundation]
}

resource "google_project_service_identity" "agent" {
  for_each = toset(local.service_identities)
  provider = google-beta

  project = var.project_id
  service = each.value

  depends_on = [time_sleep.apis_ready]
}

# Every environment's states: versioned (a bad apply is undone by restoring the previous object),
# never public, uniform access. States hold resource names and ids, never secret values.
resource "google_storage_bucket" "state" {
  #checkov:skip=CKV_GCP_62:Access to the state bucket is audited by Cloud Audit Logs (data access logs); a second usage-log bucket adds nothing.
  project                     = var.project_id
  name                        = local.state_bucket
  location                    = var.region
  force_destroy               = false
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  # Keep the last 20 versions of each state, and nothing forever.
  lifecycle_rule {
    condition {
      num_newer_versions = 20
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [time_sleep.apis_ready]
}

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "cmp-deployer"
  display_name = "Deployer of the platform stage"
  description  = "Applies terraform/ (the delivery pipeline impersonates it)."

  depends_on = [time_sleep.apis_ready]
}

resource "google_project_iam_member" "deployer" {
  for_each = toset(local.deployer_roles)
  #checkov:skip=CKV_GCP_41:The deployer deploys every function, queue and scheduler job as its own service account, which needs actAs on accounts it creates in the same apply; no human holds this role.
  #checkov:skip=CKV_GCP_49:The deployer creates and manages the platform's service accounts (one per function) and starts builds; it is impersonated only by the members bootstrap names.

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.deployer.email}"
}

# The platform's budget lives on the billing account, outside the project: a billing account
# administrator applying this stage lets the deployer manage budgets there (null: grant it by hand).
resource "google_billing_account_iam_member" "deployer_budgets" {
  for_each = var.billing_account == null ? toset([]) : toset([var.billing_account])

  billing_account_id = each.value
  role               = "roles/billing.costsManager"
  member             = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_service_account_iam_member" "deployer_impersonators" {
  for_each = toset(var.deployer_members)

  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value
}
