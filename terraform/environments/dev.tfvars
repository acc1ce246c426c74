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

secrets = {}
