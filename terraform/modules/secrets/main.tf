# Secrets are declared here; their values never are. No google_secret_manager_secret_version: a
# version's value would be stored in the Terraform state. Add versions out of band:
#   printf '%s' "$VALUE" | gcloud secrets versions add NAME --data-file=-
resource "google_secret_manager_secret" "secret" {
  for_each = var.secrets
  #checkov:skip=CKV_GCP_128:Google-managed encryption; declare user-managed replicas with a customer_managed_encryption key if CMEK becomes a requirement.

  project   = var.project_id
  secret_id = each.key

  # Replicas in the environment's region (or the locations the secret names), never "automatic": data
  # stays where the environment's data lives, and a resource-location org policy accepts it.
  replication {
    user_managed {
      dynamic "replicas" {
        for_each = length(each.value.locations) > 0 ? each.value.locations : [var.region]
        content {
          location = replicas.value
        }
      }
    }
  }
}

# Each function reads its own secrets only: the grant is on the secret, never on the project.
resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = var.accessors

  project   = var.project_id
  secret_id = google_secret_manager_secret.secret[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value.member
}
