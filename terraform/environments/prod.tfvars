# terraform plan -var-file=environments/prod.tfvars
# project_id and billing_account: export TF_VAR_project_id / TF_VAR_billing_account, or set them here.
environment = "prod"
region      = "europe-west1"

# The currency must be the billing account's (Cloud Billing refuses any other).
budget = {
  amount     = 2000
  currency   = "EUR"
  thresholds = [0.5, 0.8, 0.9, 1.0, 1.2]
}

# Multi-region for production data (Firestore's location cannot change after creation).
firestore = {
  location = "eur3"
}

function_defaults = {
  max_instances = 100
}

# The public APIs keep one warm instance each in production.
function_overrides = {
  audit_api  = { min_instances = 1 }
  tenant_api = { min_instances = 1 }
}

gke = {
  # The operators' networks that may reach the control plane, e.g.
  # { cidr_block = "203.0.113.0/24", display_name = "ops-vpn" }
  master_authorized_networks = []
}

# Domains whose DNS A records point at the load_balancer_address output; the public APIs are served at
# https://DOMAIN/<function>/ behind Cloud Armor. enabled = false serves them at their own URLs instead.
load_balancer = {
  domains = ["api.cmp.example"]
}

max_delivery_attempts = 5

# Where alerts and the budget notify (projects/P/notificationChannels/N): the on-call
# channel, created once in Cloud Monitoring.
notification_channels = []

# Partner slug -> members allowed to pull that partner's subscriptions, e.g.
#   "analytics-query-api" = ["serviceAccount:reader@analytics-prod.iam.gserviceaccount.com"]
partner_members = {}

# External topic -> the members of the domain that publishes it, e.g. the billing domain's publisher:
#   "payment-failed" = ["serviceAccount:events@billing-prod.iam.gserviceaccount.com"]
external_publishers = {}

pubsub_persistence_regions = ["europe-west1", "europe-west4"]

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
