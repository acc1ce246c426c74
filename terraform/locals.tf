# Everything the modules create is derived here from three files, so an event, a subscriber or a
# function added to the catalog or to build/manifest.json appears without editing Terraform:
#   ../schemas/catalog.json            apis, partners, events, queues (shared/catalog.py reads it too)
#   ../build/manifest.json             every function, its trigger, content hash, the HTTP functions it
#                                      calls and its needs (`make build`, from TRIGGERS, CALLS, NEEDS)
#   ../schemas/firestore.indexes.json  composite indexes and field overrides (Firebase CLI format)
#
# This file only reads variables and those files (no resources, data sources or modules), so
# tests/terraform evaluates it with `terraform console` offline and compares every name with
# shared/catalog.py and emulators/provision.py. The naming rules below are shared/catalog.py's:
#   Api.events_function            "<module>_events"
#   Api.dead_letter_topic          "<api-slug>--dead-letter"
#   Api.dead_letter_subscription   "<api-slug>--dead-letter--inspect"
#   Event.push_subscription(api)   "<topic>--<api-slug>"
#   Event.partner_subscription(p)  "<topic>--<partner-slug>"

locals {
  # A missing manifest must stop the plan (run `make build` first), never read as "no functions".
  catalog        = jsondecode(file("${path.module}/../schemas/catalog.json"))
  manifest       = jsondecode(file("${path.module}/../build/manifest.json"))
  firestore_spec = jsondecode(file("${path.module}/../schemas/firestore.indexes.json"))
  build_dir      = "${path.module}/../build"

  labels = merge(var.labels, { app = "cmp", environment = var.environment })

  apis           = { for api in local.catalog.apis : api.name => api }
  apis_by_module = { for api in local.catalog.apis : api.module => api }
  partners       = { for partner in local.catalog.partners : partner.name => partner }
  built          = { for f in local.manifest : f.name => f }

  # shared/config.py Settings.function_url: "<base>/<function>", the OIDC audience of every service call.
  functions_base_url = "https://${var.region}-${var.project_id}.cloudfunctions.net"

  # Who calls the non-HTTP functions: Pub/Sub push and Cloud Scheduler sign as one account each
  # ("pubsub-push" is the account the local suite signs as, emulators/provision.py); Cloud Tasks signs
  # as one account PER QUEUE, invoker of that queue's target function only, so a function that may
  # enqueue on its own queue can never drive another API's task handler. "queue:<name>" keys.
  queue_invoker_names = { for q in local.catalog.queues : q.name => "tasks-${q.name}" }
  invoker_account_ids = merge(
    { push = "pubsub-push", scheduler = "cloud-scheduler" },
    {
      for queue, id in local.queue_invoker_names : "queue:${queue}" => length(id) <= 30 ? id : "${substr(id, 0, 23)}-${substr(sha1(id), 0, 6)}"
    },
  )
  invoker_emails = { for key, id in local.invoker_account_ids : key => "${id}@${var.project_id}.iam.gserviceaccount.com" }
  kind_invoker   = { "pubsub-push" = "push", scheduler = "scheduler" }

  # The queue a package's functions enqueue on (its tasks function's queue): they sign their tasks as
  # that queue's invoker (CMP_TASKS_INVOKER_ACCOUNT), and the queue enforces it (modules/tasks).
  package_queues = {
    for package in distinct([for f in local.manifest : f.package]) : package => [
      for q in local.catalog.queues : q.name if try(local.built[q.target_function].package, null) == package
    ]
  }

  # --- Pub/Sub ----------------------------------------------------------------------------------

  # Pub/Sub schemas accept AVRO and PROTOCOL_BUFFER only, not JSON Schema, so no schema is attached:
  # the intake validates every payload against its JSON Schema. The schema URI cannot be a label
  # value (no ':' or '/'): it is an output, and the CloudEvent's dataschema carries it.
  topics = {
    for e in local.catalog.events : e.topic => {
      event      = e.name
      schema_uri = "${local.catalog.schema_base_uri}/${e.schema_path}"
      labels = {
        event         = e.slug
        event_version = "v${e.version}"
        publisher     = e.publisher == "external" ? "external" : local.apis[e.publisher].slug
      }
    }
  }

  # One dead-letter topic and inspection subscription per catalog API, as emulators/provision.py does.
  dead_letter_topics = {
    for api in local.catalog.apis : "${api.slug}--dead-letter" => {
      api      = api.name
      api_slug = api.slug
    }
  }
  dead_letter_subscriptions = {
    for api in local.catalog.apis : "${api.slug}--dead-letter--inspect" => {
      api   = api.name
      topic = "${api.slug}--dead-letter"
    }
  }

  # A push subscription per (event, subscribing API), only for APIs whose events function is built:
  # the others are skipped until their function exists, exactly like emulators/provision.py.
  push_subscriptions = merge([
    for e in local.catalog.events : {
      for api in [for name in e.subscribers : local.apis[name]] : "${e.topic}--${api.slug}" => {
        api               = api.name
        audience          = "${local.functions_base_url}/${api.module}_events"
        dead_letter_topic = "${api.slug}--dead-letter"
        function          = "${api.module}_events"
        topic             = e.topic
      } if contains(keys(local.built), "${api.module}_events")
    }
  ]...)
  skipped_subscribers = sort(distinct(flatten([
    for e in local.catalog.events : [
      for name in e.subscribers : name if !contains(keys(local.built), "${local.apis[name].module}_events")
    ]
  ])))

  partner_subscriptions = merge([
    for e in local.catalog.events : {
      for partner in [for name in e.partner_subscribers : local.partners[name]] : "${e.topic}--${partner.slug}" => {
        partner = partner.slug
        topic   = e.topic
      }
    }
  ]...)

  # Partner teams pull their own subscriptions only: roles/pubsub.subscriber on those, nothing wider.
  partner_subscribers = merge([
    for name, sub in local.partner_subscriptions : {
      for member in lookup(var.partner_members, sub.partner, []) : "${name}.${member}" => {
        member       = member
        subscription = name
      }
    }
  ]...)

  # --- Functions --------------------------------------------------------------------------------

  function_account_names = { for f in local.manifest : f.name => "fn-${replace(lower(f.name), "_", "-")}" }
  # Service account ids are 6-30 characters: a longer name keeps a readable prefix and a hash.
  function_account_ids = {
    for name, id in local.function_account_names : name => length(id) <= 30 ? id : "${substr(id, 0, 23)}-${substr(sha1(id), 0, 6)}"
  }

  # The emails google_service_account gives those ids (checks.tf compares them after apply).
  function_emails = { for name, id in local.function_account_ids : name => "${id}@${var.project_id}.iam.gserviceaccount.com" }

  functions = {
    for f in local.manifest : f.name => {
      account_id  = local.function_account_ids[f.name]
      api         = try(local.apis_by_module[f.package].name, null)
      calls       = f.calls # "http" functions it calls as a service (CALLS in its main.py)
      entry_point = f.entry_point
      kind        = split(":", f.trigger)[0]
      needs       = f.needs # project-level capabilities, e.g. "identity-admin" (NEEDS in its main.py)
      package     = f.package
      schedule    = startswith(f.trigger, "scheduler:") ? trimprefix(f.trigger, "scheduler:") : null
      # Secrets an API creates at run time (NEEDS "webhook-secrets") are named "<api-slug>--<name>": its
      # grants are conditioned on that prefix (modules/iam), so no API reaches another's secrets.
      secret_prefix = try("${local.apis_by_module[f.package].slug}--", null)
      sha256        = f.sha256
      source_dir    = "${local.build_dir}/${f.source_dir}"
      url           = "${local.functions_base_url}/${f.name}"
      # "http" functions are public APIs (authentication is in the app), reached through the load
      # balancer when there is one; the others are invoked by their own service accounts only: Pub/Sub
      # push, Cloud Scheduler, or the invoker of each queue that targets them.
      public = split(":", f.trigger)[0] == "http"
      invokers = (
        split(":", f.trigger)[0] == "http" ? [] :
        split(":", f.trigger)[0] == "tasks" ? sort([for q in local.catalog.queues : "queue:${q.name}" if q.target_function == f.name]) :
        [local.kind_invoker[split(":", f.trigger)[0]]]
      )
      # Pub/Sub, Cloud Tasks and Cloud Scheduler of the same project are internal traffic: their targets
      # take nothing else. The APIs take internal traffic and the load balancer's, or (no load balancer)
      # everything.
      ingress = split(":", f.trigger)[0] != "http" ? "ALLOW_INTERNAL_ONLY" : var.load_balancer.enabled ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_ALL"
      # A function calling another's API must reach it as internal traffic once the APIs refuse the
      # internet: all its egress goes through the VPC connector (Private Google Access, Cloud NAT).
      vpc_egress = var.load_balancer.enabled && length(f.calls) > 0
      settings = {
        available_cpu    = coalesce(try(var.function_overrides[f.name].available_cpu, null), var.function_defaults.available_cpu)
        available_memory = coalesce(try(var.function_overrides[f.name].available_memory, null), var.function_defaults.available_memory)
        concurrency      = coalesce(try(var.function_overrides[f.name].concurrency, null), var.function_defaults.concurrency)
        max_instances    = coalesce(try(var.function_overrides[f.name].max_instances, null), var.function_defaults.max_instances)
        min_instances    = coalesce(try(var.function_overrides[f.name].min_instances, null), var.function_defaults.min_instances)
        timeout_seconds  = coalesce(try(var.function_overrides[f.name].timeout_seconds, null), var.function_defaults.timeout_seconds)
      }
    }
  }

  # Who calls each HTTP function as a service (manifest "calls", from CALLS in functions/<pkg>/main.py):
  # HTTP functions with callers only. shared/services.py mints the caller's OIDC token (its own service
  # account, from the metadata server) for the callee's URL; the callee's CallerAuthenticator accepts
  # it when the email is in CMP_SERVICE_CALLERS and the audience is CMP_SERVICE_AUDIENCE.
  function_callers = {
    for name, f in local.functions : name => sort([
      for caller, c in local.functions : local.function_emails[caller] if contains(c.calls, name)
    ]) if f.kind == "http" && anytrue([for c in values(local.functions) : contains(c.calls, name)])
  }

  # The CMP_* settings of shared/config.py, per function.
  function_env = {
    for name, f in local.functions : name => merge(
      {
        CMP_ENVIRONMENT           = var.environment
        CMP_FUNCTIONS_BASE_URL    = local.functions_base_url
        CMP_LOCATION              = var.region
        CMP_LOG_LEVEL             = var.log_level
        CMP_MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
        CMP_PROJECT_ID            = var.project_id
        CMP_SERVICE_AUTH          = "oidc"
      },
      # Tasks are signed as the invoker of the package's queue (shared/tasks.py); the queue enforces it.
      length(local.package_queues[f.package]) == 1 ? {
        CMP_TASKS_INVOKER_ACCOUNT = local.invoker_emails["queue:${local.package_queues[f.package][0]}"]
      } : tomap({}),
      # Service endpoints accept OIDC tokens of their invokers only, minted for their own URL. The
      # audience is explicit: the K_SERVICE fallback in shared/auth.py would see the Cloud Run
      # service name, which Cloud Functions derives with hyphens instead of underscores.
      f.kind == "http" ? tomap({}) : tomap({
        CMP_SERVICE_AUDIENCE = f.url
        CMP_SERVICE_INVOKERS = jsonencode([for key in f.invokers : local.invoker_emails[key]])
      }),
      # An HTTP API called by other functions accepts their accounts' OIDC tokens, minted for its URL.
      # Without callers it gets neither variable, and refuses every service token (shared/auth.py).
      contains(keys(local.function_callers), name) ? tomap({
        CMP_SERVICE_AUDIENCE = f.url
        CMP_SERVICE_CALLERS  = jsonencode(local.function_callers[name])
      }) : tomap({}),
      # A function serving the browser sign-in (NEEDS "identity-client") gets the browser API key.
      contains(f.needs, "identity-client") && var.identity.web_api_key != null ? tomap({
        CMP_IDENTITY_API_KEY = var.identity.web_api_key
      }) : tomap({}),
      # A function that sends mail (NEEDS "smtp-relay") gets the relay (username only when it needs one).
      contains(f.needs, "smtp-relay") && var.smtp != null ? {
        for key, value in {
          CMP_SMTP_HOST     = var.smtp.host
          CMP_SMTP_PORT     = tostring(var.smtp.port)
          CMP_SMTP_FROM     = var.smtp.from
          CMP_SMTP_STARTTLS = tostring(var.smtp.starttls)
          CMP_SMTP_USERNAME = var.smtp.username
        } : key => value if value != null
      } : tomap({}),
    )
  }

  # roles/pubsub.publisher, topic by topic: a function publishes the events its API publishes (the
  # outbox publishes after commit in whichever function ran the use case); an events function also
  # parks failed events on its API's dead-letter topic. A kernel service function (its package is no
  # catalog API and it is not public: the outbox relay) republishes any API's events, so it gets every
  # non-external topic; a public function of no API (serving web pages) publishes nothing.
  internal_topics = sort([for e in local.catalog.events : e.topic if e.publisher != "external"])
  function_topics = {
    for name, f in local.functions : name => (
      f.api == null ? (f.public ? [] : local.internal_topics) : sort([for e in local.catalog.events : e.topic if e.publisher == f.api])
    )
  }
  topic_publishers = merge(
    merge([
      for name, topics in local.function_topics : {
        for topic in topics : "${name}.${topic}" => { function = name, topic = topic }
      }
    ]...),
    {
      for name, f in local.functions : "${name}.${local.apis[f.api].slug}--dead-letter" => {
        function = name
        topic    = "${local.apis[f.api].slug}--dead-letter"
      } if f.kind == "pubsub-push" && f.api != null
    },
  )

  # --- Cloud Tasks ------------------------------------------------------------------------------

  queues = {
    for q in local.catalog.queues : q.name => {
      max_attempts              = q.max_attempts
      max_backoff               = "${q.max_backoff_seconds}s"
      max_concurrent_dispatches = q.max_concurrent_dispatches
      max_dispatches_per_second = q.max_dispatches_per_second
      max_doublings             = q.max_doublings
      min_backoff               = "${q.min_backoff_seconds}s"
      target_function           = q.target_function
      # The queue pins its tasks' identity and host (modules/tasks): its own invoker's OIDC token for
      # its target's URL, on the project's functions domain, whatever a task asks for.
      invoker         = "queue:${q.name}"
      target_audience = "${local.functions_base_url}/${q.target_function}"
      target_host     = trimprefix(local.functions_base_url, "https://")
    }
  }
  # roles/cloudtasks.enqueuer on a queue for the functions of the package its target belongs to.
  queue_enqueuers = merge([
    for queue, q in local.queues : {
      for name, f in local.functions : "${name}.${queue}" => { function = name, queue = queue }
      if try(local.built[q.target_function].package, null) == f.package
    }
  ]...)
  # The queue's task identity must be actAs-able by whoever creates its tasks: on that queue's invoker only.
  tasks_act_as = {
    for key, binding in local.queue_enqueuers : key => { function = binding.function, invoker = "queue:${binding.queue}" }
  }

  # --- Secret Manager ---------------------------------------------------------------------------

  secret_accessors = merge([
    for secret, s in var.secrets : {
      for name in s.accessors : "${name}.${secret}" => { function = name, secret = secret }
    }
  ]...)

  # --- External publishers -----------------------------------------------------------------------

  # The domains outside the platform (billing, privacy, support, analytics) publish the catalog's
  # external events: roles/pubsub.publisher on the external topics they own, nothing else.
  external_topics = sort([for e in local.catalog.events : e.topic if e.publisher == "external"])
  external_publishers = merge([
    for topic, members in var.external_publishers : {
      for member in members : "${topic}.${member}" => { member = member, topic = topic }
    }
  ]...)

  # --- Firestore --------------------------------------------------------------------------------

  firestore_indexes = {
    for ix in local.firestore_spec.indexes : join("/", [
      ix.collectionGroup,
      try(ix.queryScope, "COLLECTION"),
      join(",", [for field in ix.fields : "${field.fieldPath}:${try(field.order, "ARRAY_${field.arrayConfig}")}"]),
      ]) => {
      collection  = ix.collectionGroup
      query_scope = try(ix.queryScope, "COLLECTION")
      fields = [
        for field in ix.fields : {
          array_config = try(field.arrayConfig, null)
          field_path   = field.fieldPath
          order        = try(field.order, null)
        }
      ]
    }
  }
  # Field overrides of firestore.indexes.json, and a TTL policy on each kernel collection. A TTL
  # field is never queried, and an indexed, ever-increasing timestamp caps the write rate: exempt.
  firestore_fields = merge(
    {
      for o in try(local.firestore_spec.fieldOverrides, []) : "${o.collectionGroup}/${o.fieldPath}" => {
        collection = o.collectionGroup
        field      = o.fieldPath
        ttl        = try(o.ttl, false)
        indexes = try([
          for i in o.indexes : {
            array_config = try(i.arrayConfig, null)
            order        = try(i.order, null)
            query_scope  = try(i.queryScope, "COLLECTION")
          }
        ], null)
      }
    },
    {
      for collection in var.firestore.ttl_collections : "${collection}/${var.firestore.ttl_field}" => {
        collection = collection
        field      = var.firestore.ttl_field
        indexes    = []
        ttl        = true
      }
    },
  )

  # --- GKE workloads ----------------------------------------------------------------------------

  workloads = {
    for name, w in var.workloads : name => {
      firestore = w.firestore
      ksa       = coalesce(w.ksa, name)
      namespace = w.namespace
    }
  }
  workload_subscriptions = merge([
    for name, w in var.workloads : merge(
      { for sub in w.subscriptions : "${name}.${sub}" => { subscription = sub, workload = name } },
      {
        for sub, s in local.partner_subscriptions : "${name}.${sub}" => { subscription = sub, workload = name }
        if contains(w.partners, s.partner)
      },
    )
  ]...)
  workload_topics = merge([
    for name, w in var.workloads : {
      for topic in distinct(concat(w.topics, w.internal_topics ? local.internal_topics : [])) : "${name}.${topic}" => { topic = topic, workload = name }
    }
  ]...)
}
