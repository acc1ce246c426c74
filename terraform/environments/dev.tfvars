# terraform plan -var-file=environments/dev.tfvars
# project_id and billing_account: export TF_VAR_project_id / TF_VAR_billing_account, or set them here.
environment = "dev"
region      = "europe-west1"

budget = {
  amount = 200
}

function_defaults = {
  max_instances = 5
}

gke = {
  master_authorized_networks = []
}

max_delivery_attempts = 5

# Partner slug -> members allowed to pull that partner's subscriptions (none in dev).
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
