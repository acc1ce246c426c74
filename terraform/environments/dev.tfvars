# terraform plan -var-file=environments/dev.tfvars
# project_id and billing_account: export TF_VAR_project_id / TF_VAR_billing_account, or set them here.
environment = "dev"
region      = "europe-west1"

# The currency must be the billing account's (Cloud Billing refuses any other).
budget = {
  amount   = 200
  currency = "EUR"
}

function_defaults = {
  max_instances = 5
}

gke = {
  master_authorized_networks = []
}

# Domains whose DNS A records point at the load_balancer_address output; the public APIs are served at
# https://DOMAIN/<function>/ behind Cloud Armor. enabled = false serves them at their own URLs instead.
load_balancer = {
  domains = ["api.dev.cmp.example"]
}

max_delivery_attempts = 5

# Where alerts and the budget notify (channel ids: projects/P/notificationChannels/N; create
# them once in Cloud Monitoring). None in dev: alerts are visible in the console only.
notification_channels = []

# Partner slug -> members allowed to pull that partner's subscriptions (none in dev).
partner_members = {}

# External topic -> the members of the domain that publishes it, e.g. the billing domain's publisher:
#   "payment-failed" = ["serviceAccount:events@billing-prod.iam.gserviceaccount.com"]
external_publishers = {}

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
