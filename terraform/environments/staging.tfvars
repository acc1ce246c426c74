# terraform plan -var-file=environments/staging.tfvars
# project_id and billing_account: export TF_VAR_project_id / TF_VAR_billing_account, or set them here.
environment = "staging"
region      = "europe-west1"

budget = {
  amount = 500
}

function_defaults = {
  max_instances = 20
}

gke = {
  master_authorized_networks = []
}

max_delivery_attempts = 5

partner_members = {}

# Notification API: the email provider's delivery-report signing key (read to verify reports) and the
# SMTP relay's password (read by the send task, when CMP_SMTP_USERNAME is set).
secrets = {
  "notification-provider-webhook" = { accessors = ["notification_api"] }
  "notification-smtp-password"    = { accessors = ["notification_api_tasks"] }
}

# The SMTP relay of the Notification API (its password is the notification-smtp-password secret).
smtp = {
  host     = "smtp.sendgrid.net"
  port     = 587
  from     = "Customer Management <notifications@cmp.example>"
  username = "apikey"
}
