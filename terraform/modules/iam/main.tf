# Identities of the platform: one service account per function, and the accounts that call the non-HTTP
# functions (Pub/Sub push, Cloud Scheduler, one per Cloud Tasks queue). Project-level grants are limited
# to roles that have no narrower scope, or (run-time secrets) carry an IAM condition that narrows them
# to a resource name prefix.

resource "google_service_account" "function" {
  for_each = var.functions

  project      = var.project_id
  account_id   = each.value.account_id
  display_name = "Cloud Function ${each.key}"
  description  = "Runs the ${each.key} function (${each.value.kind}) and nothing else."
}

resource "google_service_account" "invoker" {
  for_each = var.invokers

  project      = var.project_id
  account_id   = each.value
  display_name = "Invoker: ${each.key}"
  description  = "Signs the OIDC tokens ${each.key} requests carry to the platform's functions."
}

# Firestore offers no IAM scope narrower than the project (no per-database or per-collection roles):
# roles/datastore.user at project level is the least a function that reads and writes documents needs.
resource "google_project_iam_member" "function_datastore" {
  for_each = var.functions

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"
}

# HTTP functions verify users' ID tokens with check_revoked=True (shared/auth.py): the signature check
# needs no role, but the revocation check reads the user (accounts:lookup, firebaseauth.users.get).
# Identity Platform has no resource-level IAM, so the read-only role is granted at project level, to
# the HTTP functions only. The admin roles below go only to functions that declare the need.
resource "google_project_iam_member" "http_token_revocation_check" {
  for_each = { for name, f in var.functions : name => f if f.kind == "http" }

  project = var.project_id
  role    = "roles/firebaseauth.viewer"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"
}

# Identity administration, for the functions whose manifest entry needs "identity-admin" (NEEDS in their
# functions/<package>/main.py): they create and delete Identity Platform tenants
# (roles/identityplatform.admin) and, inside them, create, disable and delete users, set custom claims
# and revoke refresh tokens (roles/firebaseauth.admin). Identity Platform has no resource-level IAM (no
# per-tenant or per-user binding), so both are granted at project level, to those functions only.
resource "google_project_iam_member" "identity_platform_admin" {
  for_each = { for name, f in var.functions : name => f if contains(f.needs, "identity-admin") }

  project = var.project_id
  role    = "roles/identityplatform.admin"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_project_iam_member" "firebaseauth_admin" {
  for_each = { for name, f in var.functions : name => f if contains(f.needs, "identity-admin") }

  project = var.project_id
  role    = "roles/firebaseauth.admin"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"
}

# Secrets an API creates at run time (webhook signing secrets), for the functions whose manifest entry
# needs "webhook-secrets": no per-secret grant can name them, so the grants are at project level, each
# conditioned on the API's own secret-name prefix ("<api-slug>--", var.functions[*].secret_prefix): one
# API can never reach another's secrets, nor any secret Terraform declares. No secretmanager.admin: it
# carries setIamPolicy. An "http" function manages its secrets (create, add versions, read, delete:
# the custom role below); a "tasks" function reads their versions to sign deliveries.
resource "google_project_iam_custom_role" "runtime_secrets" {
  project     = var.project_id
  role_id     = "cmpRuntimeSecretsManager"
  title       = "CMP run-time secrets manager"
  description = "Create, version, read and delete secrets; no IAM policy changes. Granted with a secret-name prefix condition."
  permissions = [
    "secretmanager.secrets.create",
    "secretmanager.secrets.delete",
    "secretmanager.secrets.get",
    "secretmanager.versions.access",
    "secretmanager.versions.add",
    "secretmanager.versions.disable",
    "secretmanager.versions.get",
  ]
}

resource "google_project_iam_member" "runtime_secrets_manager" {
  for_each = { for name, f in var.functions : name => f if contains(f.needs, "webhook-secrets") && f.kind == "http" }

  project = var.project_id
  role    = google_project_iam_custom_role.runtime_secrets.name
  member  = "serviceAccount:${google_service_account.function[each.key].email}"

  condition {
    title       = "own-api-secrets-only"
    description = "Only the secrets named with this function's API prefix."
    expression  = "resource.name.startsWith(\"projects/${var.project_number}/secrets/${each.value.secret_prefix}\")"
  }
}

resource "google_project_iam_member" "runtime_secrets_accessor" {
  for_each = { for name, f in var.functions : name => f if contains(f.needs, "webhook-secrets") && f.kind == "tasks" }

  project = var.project_id
  role    = "roles/secretmanager.secretAccessor"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"

  condition {
    title       = "own-api-secrets-only"
    description = "Only the secrets named with this function's API prefix."
    expression  = "resource.name.startsWith(\"projects/${var.project_number}/secrets/${each.value.secret_prefix}\")"
  }
}

# A function that creates tasks on a queue names the queue's invoker as the task's OIDC identity:
# Cloud Tasks requires iam.serviceAccounts.actAs on it, granted on that one account only.
resource "google_service_account_iam_member" "tasks_act_as" {
  for_each = var.tasks_act_as

  service_account_id = google_service_account.invoker[each.value.invoker].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

# Pub/Sub mints the push subscriptions' OIDC tokens as the push invoker. Projects created before
# April 2021 need this grant to its service agent; on newer ones it is harmless and scoped to one account.
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.invoker["push"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${var.pubsub_service_agent}"
}
