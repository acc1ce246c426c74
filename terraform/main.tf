# The platform, from the catalog and the build manifest (locals.tf): one module per concern.
# Modules take maps keyed by name and create one resource per entry; bindings are resolved to IAM
# members here, from the service accounts the iam and gke modules create.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  pubsub_service_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

module "iam" {
  source = "./modules/iam"

  functions            = local.functions
  invokers             = local.invoker_account_ids
  project_id           = var.project_id
  project_number       = data.google_project.this.number
  pubsub_service_agent = local.pubsub_service_agent
  tasks_act_as         = local.tasks_act_as

  depends_on = [time_sleep.apis_ready]
}

module "firestore" {
  source = "./modules/firestore"

  fields     = local.firestore_fields
  indexes    = local.firestore_indexes
  location   = coalesce(var.firestore.location, var.region)
  project_id = var.project_id
  protect    = var.environment == "prod"

  depends_on = [time_sleep.apis_ready]
}

module "secrets" {
  source = "./modules/secrets"

  accessors = {
    for key, a in local.secret_accessors : key => {
      member = "serviceAccount:${module.iam.function_emails[a.function]}"
      secret = a.secret
    }
  }
  project_id = var.project_id
  region     = var.region
  secrets    = { for name, s in var.secrets : name => { locations = s.locations } }

  depends_on = [time_sleep.apis_ready]
}

module "tasks" {
  source = "./modules/tasks"

  enqueuers = {
    for key, e in local.queue_enqueuers : key => {
      member = "serviceAccount:${module.iam.function_emails[e.function]}"
      queue  = e.queue
    }
  }
  invoker_emails = module.iam.invoker_emails
  project_id     = var.project_id
  queues         = local.queues
  region         = var.region

  depends_on = [time_sleep.apis_ready]
}

module "functions" {
  source = "./modules/functions"

  egress_cidr           = var.load_balancer.egress_cidr
  environment           = var.environment
  environment_variables = local.function_env
  functions             = local.functions
  invoker_emails        = module.iam.invoker_emails
  project_id            = var.project_id
  region                = var.region
  service_accounts      = module.iam.function_emails

  depends_on = [time_sleep.apis_ready]
}

# The public APIs behind an external HTTPS load balancer with Cloud Armor (load_balancer.enabled). Every
# "http" function of the manifest is routed at /<function>/: a new public function needs no edit here.
module "edge" {
  source = "./modules/edge"
  count  = var.load_balancer.enabled ? 1 : 0

  default_function = var.load_balancer.default_function
  domains          = var.load_balancer.domains
  functions        = toset([for name, f in local.functions : name if f.public])
  name             = "cmp-${var.environment}"
  project_id       = var.project_id
  rate_limit       = var.load_balancer.rate_limit
  region           = var.region
  waf_rules        = var.load_balancer.waf_rules

  depends_on = [module.functions]
}

module "gke" {
  source = "./modules/gke"

  cluster             = var.gke
  deletion_protection = var.environment == "prod"
  project_id          = var.project_id
  region              = var.region
  workloads           = local.workloads

  depends_on = [time_sleep.apis_ready]
}

module "pubsub" {
  source = "./modules/pubsub"

  dead_letter_subscriptions = local.dead_letter_subscriptions
  dead_letter_topics        = local.dead_letter_topics
  function_urls             = module.functions.urls
  max_delivery_attempts     = var.max_delivery_attempts
  partner_subscriptions     = local.partner_subscriptions
  persistence_regions       = var.pubsub_persistence_regions
  project_id                = var.project_id
  push_invoker_email        = module.iam.invoker_emails["push"]
  push_subscriptions        = local.push_subscriptions
  service_agent             = local.pubsub_service_agent
  topics                    = local.topics

  publishers = merge(
    {
      for key, p in local.topic_publishers : key => {
        member = "serviceAccount:${module.iam.function_emails[p.function]}"
        topic  = p.topic
      }
    },
    {
      for key, p in local.workload_topics : key => {
        member = "serviceAccount:${module.gke.workload_emails[p.workload]}"
        topic  = p.topic
      }
    },
    # The other domains (billing, privacy, support, analytics) publish the external events they own.
    { for key, p in local.external_publishers : "external.${key}" => p },
  )

  subscribers = merge(
    local.partner_subscribers,
    {
      for key, s in local.workload_subscriptions : key => {
        member       = "serviceAccount:${module.gke.workload_emails[s.workload]}"
        subscription = s.subscription
      }
    },
  )

  depends_on = [time_sleep.apis_ready]
}
