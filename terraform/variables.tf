# Variables in alphabetical order. Five have no default: project_id, billing_account, and (set by
# environments/<env>.tfvars) environment, budget and notification_channels; region defaults to the
# catalog's home region.

variable "alerts" {
  description = "Thresholds of the platform's alerts (monitoring.tf)."
  type = object({
    error_ratio           = optional(number, 0.05) # share of 5xx answers of a function over 5 minutes
    latency_p95_ms        = optional(number, 2000) # p95 request latency of a function over 5 minutes
    oldest_unacked_s      = optional(number, 3600) # age of the oldest unacknowledged message of a partner subscription
    queue_depth           = optional(number, 1000) # tasks waiting in a Cloud Tasks queue
    scheduler_failures    = optional(number, 3)    # failed runs of a Cloud Scheduler job in 15 minutes
    unacked_push_messages = optional(number, 500)  # messages waiting in a push subscription
  })
  default = {}
}

variable "billing_account" {
  description = "Billing account the budget alert watches, as XXXXXX-XXXXXX-XXXXXX."
  type        = string

  validation {
    condition     = can(regex("^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$", var.billing_account))
    error_message = "billing_account must look like 0X0X0X-0X0X0X-0X0X0X (upper-case hex)."
  }
}

variable "budget" {
  description = "Monthly budget of the project: amount in whole units of currency, which must be the billing account's currency (ISO 4217, e.g. EUR, USD: Cloud Billing refuses any other), and alert thresholds (fractions)."
  type = object({
    amount     = number
    currency   = string
    thresholds = optional(list(number), [0.5, 0.9, 1.0])
  })

  validation {
    condition     = var.budget.amount > 0 && alltrue([for t in var.budget.thresholds : t > 0 && t <= 2])
    error_message = "budget.amount must be positive and every threshold in (0, 2]."
  }

  validation {
    condition     = can(regex("^[A-Z]{3}$", var.budget.currency))
    error_message = "budget.currency must be the billing account's ISO 4217 currency code, e.g. EUR or USD."
  }
}

variable "environment" {
  description = "dev, staging or prod: the value of CMP_ENVIRONMENT, and prod turns on Firestore PITR and delete protection."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "external_publishers" {
  description = "External topic (a catalog event published by another domain: billing, privacy, support, analytics) -> the IAM members of that domain allowed to publish to it, e.g. serviceAccount:events@billing-prod.iam.gserviceaccount.com."
  type        = map(list(string))
  default     = {}

  validation {
    condition = alltrue(flatten([
      for members in values(var.external_publishers) : [for m in members : can(regex("^(serviceAccount|group|principal|principalSet):", m))]
    ]))
    error_message = "external_publishers entries must be IAM members such as serviceAccount:NAME@PROJECT.iam.gserviceaccount.com."
  }
}

variable "firestore" {
  description = "Firestore (default) database: location (a region or multi-region such as eur3; null = var.region) and the TTL policies the kernel relies on."
  type = object({
    location        = optional(string)
    ttl_collections = optional(list(string), ["_outbox", "_processed_events", "_delivery_attempts", "_idempotency"])
    ttl_field       = optional(string, "expire_at")
  })
  default = {}
}

variable "function_defaults" {
  description = "Runtime settings every function gets unless function_overrides says otherwise."
  type = object({
    available_cpu    = optional(string, "1")
    available_memory = optional(string, "512Mi")
    concurrency      = optional(number, 1)
    max_instances    = optional(number, 20)
    min_instances    = optional(number, 0)
    timeout_seconds  = optional(number, 60)
  })
  default = {}

  validation {
    condition     = var.function_defaults.min_instances <= var.function_defaults.max_instances
    error_message = "function_defaults.min_instances must not exceed max_instances."
  }
}

variable "function_overrides" {
  description = "Per-function runtime settings, keyed by the function's name in build/manifest.json."
  type = map(object({
    available_cpu    = optional(string)
    available_memory = optional(string)
    concurrency      = optional(number)
    max_instances    = optional(number)
    min_instances    = optional(number)
    timeout_seconds  = optional(number)
  }))
  default = {}
}

variable "gke" {
  description = "The Autopilot cluster that runs the long-running workloads: private nodes, its own VPC, and who may reach the control plane."
  type = object({
    master_authorized_networks = optional(list(object({
      cidr_block   = string
      display_name = string
    })), [])
    master_ipv4_cidr_block = optional(string)
    name                   = optional(string, "cmp")
    pods_cidr              = optional(string, "10.64.0.0/14")
    private_endpoint       = optional(bool, false)
    services_cidr          = optional(string, "10.68.0.0/20")
    subnet_cidr            = optional(string, "10.60.0.0/20")
  })
  default = {}

  validation {
    condition     = alltrue([for n in var.gke.master_authorized_networks : can(cidrhost(n.cidr_block, 0))])
    error_message = "Every gke.master_authorized_networks entry needs a valid cidr_block."
  }
}

variable "identity" {
  description = "Identity Platform: domains allowed to run the sign-in flow, and the project's browser API key for the web sign-in (NEEDS \"identity-client\"; a public identifier, restricted to the Identity Toolkit API and the authorized domains in the console, not a secret)."
  type = object({
    authorized_domains = optional(list(string), [])
    web_api_key        = optional(string)
  })
  default = {}
}

variable "labels" {
  description = "Labels added to every resource that takes labels (with environment and app)."
  type        = map(string)
  default     = {}
}

variable "load_balancer" {
  description = "The external HTTPS load balancer with Cloud Armor in front of the public APIs. enabled = false (an environment without a load balancer, e.g. a throwaway dev project): the APIs take traffic from anywhere at their own URLs, and no VPC connector is created. domains: the certificate's domains (DNS A records to the load_balancer output's address). default_function: the public function that answers paths no /<function>/ prefix matches."
  type = object({
    enabled          = optional(bool, true)
    domains          = optional(list(string), [])
    default_function = optional(string)
    egress_cidr      = optional(string, "10.8.0.0/28")
    rate_limit = optional(object({
      count        = number
      interval_sec = number
    }), { count = 600, interval_sec = 60 })
    waf_rules = optional(map(number), {
      "lfi-v33-stable"               = 1
      "methodenforcement-v33-stable" = 1
      "protocolattack-v33-stable"    = 1
      "rce-v33-stable"               = 1
      "rfi-v33-stable"               = 1
      "scannerdetection-v33-stable"  = 1
      "sessionfixation-v33-stable"   = 1
      "sqli-v33-stable"              = 1
      "xss-v33-stable"               = 1
    })
  })
  default = {}

  validation {
    condition     = !var.load_balancer.enabled || length(var.load_balancer.domains) > 0
    error_message = "load_balancer.domains needs at least one domain (or load_balancer.enabled = false)."
  }

  validation {
    condition     = can(cidrhost(var.load_balancer.egress_cidr, 0)) && endswith(var.load_balancer.egress_cidr, "/28")
    error_message = "load_balancer.egress_cidr is the VPC connector's /28."
  }
}

variable "log_level" {
  description = "CMP_LOG_LEVEL of every function."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "max_delivery_attempts" {
  description = "CMP_MAX_DELIVERY_ATTEMPTS: attempts before the intake parks an event. Pub/Sub's dead-letter policy (a backstop) allows 5 more."
  type        = number
  default     = 5

  validation {
    # Pub/Sub accepts 5..100 for a dead-letter policy, which is set at this value + 5.
    condition     = var.max_delivery_attempts >= 1 && var.max_delivery_attempts <= 95 && floor(var.max_delivery_attempts) == var.max_delivery_attempts
    error_message = "max_delivery_attempts must be an integer between 1 and 95."
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids every alert and the budget notify (projects/P/notificationChannels/N): set per environment (an alert routed nowhere is noticed by nobody)."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "notification_channels entries are channel ids: projects/P/notificationChannels/N."
  }
}

variable "partner_members" {
  description = "Partner slug (from the catalog) -> IAM members allowed to pull that partner's subscriptions, e.g. serviceAccount:reader@other-project.iam.gserviceaccount.com."
  type        = map(list(string))
  default     = {}

  validation {
    condition = alltrue(flatten([
      for members in values(var.partner_members) : [for m in members : can(regex("^(serviceAccount|group|user|principal|principalSet):", m))]
    ]))
    error_message = "partner_members entries must be IAM members such as serviceAccount:NAME@PROJECT.iam.gserviceaccount.com."
  }
}

variable "project_id" {
  description = "The Google Cloud project of this environment (one project per environment)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lower-case letters, digits and hyphens)."
  }
}

variable "pubsub_persistence_regions" {
  description = "Regions Pub/Sub may store messages in (message storage policy); empty = the organisation's default."
  type        = list(string)
  default     = []
}

variable "region" {
  description = "Region of the functions, queues, scheduler jobs, cluster and Firestore (unless firestore.location says otherwise)."
  type        = string
  default     = "europe-west1"
}

variable "secrets" {
  description = "Secret Manager secrets by name: the functions (manifest names) that may read each, and replica locations (empty: the region). Values are never in Terraform: add versions with gcloud."
  type = map(object({
    accessors = optional(list(string), [])
    locations = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.secrets) : can(regex("^[A-Za-z0-9_-]{1,255}$", name))])
    error_message = "Secret names may contain letters, digits, hyphens and underscores only."
  }
}

variable "services" {
  description = "APIs the platform stage enables; bootstrap/ enables the ones needed before any plan (Service Usage, Cloud Resource Manager, IAM, Storage, Pub/Sub, Cloud Tasks)."
  type        = list(string)
  default = [
    "artifactregistry.googleapis.com",
    "billingbudgets.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "firestore.googleapis.com",
    "identitytoolkit.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "vpcaccess.googleapis.com",
  ]
}

variable "smtp" {
  description = "The SMTP relay of the functions that send mail (NEEDS \"smtp-relay\"; their CMP_SMTP_* settings). Its password, when username is set, is the notification-smtp-password secret, never a variable. null: the functions keep the defaults of shared/config.py."
  type = object({
    host     = string
    port     = optional(number, 587)
    from     = string
    starttls = optional(bool, true)
    username = optional(string)
  })
  default = null
}

variable "workloads" {
  description = "Long-running workloads on GKE, by name (= their Google service account id): the Kubernetes namespace and service account bound by workload identity, the catalog partners whose pull subscriptions they read, extra subscriptions and topics, whether it reads and writes Firestore, and whether it republishes the platform's own events (every non-external topic, as the outbox relay does)."
  type = map(object({
    firestore       = optional(bool, false)
    internal_topics = optional(bool, false)
    ksa             = optional(string)
    namespace       = string
    partners        = optional(list(string), [])
    subscriptions   = optional(list(string), [])
    topics          = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.workloads) : can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", name))])
    error_message = "Workload names are service account ids: 6-30 lower-case letters, digits and hyphens."
  }
}
