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
  tasks_enqueuers      = local.tasks_enqueuers

  depends_on = [google_project_service.service]
}

module "firestore" {
  source = "./modules/firestore"

  fields     = local.firestore_fields
  indexes    = local.firestore_indexes
  location   = coalesce(var.firestore.location, var.region)
  project_id = var.project_id
  protect    = var.environment == "prod"

  depends_on = [google_project_service.service]
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
  secrets    = { for name, s in var.secrets : name => { locations = s.locations } }

  depends_on = [google_project_service.service]
}

module "tasks" {
  source = "./modules/tasks"

  enqueuers = {
    for key, e in local.queue_enqueuers : key => {
      member = "serviceAccount:${module.iam.function_emails[e.function]}"
      queue  = e.queue
    }
  }
  project_id = var.project_id
  queues     = local.queues
  region     = var.region

  depends_on = [google_project_service.service]
}

module "functions" {
  source = "./modules/functions"

  build_service_account = var.functions_build_service_account
  environment           = var.environment
  environment_variables = local.function_env
  functions             = local.functions
  invoker_emails        = module.iam.invoker_emails
  project_id            = var.project_id
  region                = var.region
  service_accounts      = module.iam.function_emails

  depends_on = [google_project_service.service]
}

module "gke" {
  source = "./modules/gke"

  cluster             = var.gke
  deletion_protection = var.environment == "prod"
  project_id          = var.project_id
  region              = var.region
  workloads           = local.workloads

  depends_on = [google_project_service.service]
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

  depends_on = [google_project_service.service]
}
