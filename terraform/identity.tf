# Identity Platform: users sign in with their tenant's identity and carry tenant_id, roles and
# platform_operator as custom claims (shared/auth.py). Multi-tenancy is allowed so that a tenant may
# bring its own identity providers as an Identity Platform tenant.
resource "google_identity_platform_config" "this" {
  project                    = var.project_id
  authorized_domains         = var.identity.authorized_domains
  autodelete_anonymous_users = true

  multi_tenant {
    allow_tenants = true
  }

  sign_in {
    allow_duplicate_emails = false

    email {
      enabled           = true
      password_required = true
    }
  }

  depends_on = [time_sleep.apis_ready]
}
