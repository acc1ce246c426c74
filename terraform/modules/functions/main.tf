locals {
  public    = { for name, f in var.functions : name => f if f.public }
  scheduled = { for name, f in var.functions : name => f if f.schedule != null }
  # One run.invoker grant per (function, invoker): a tasks function may be the target of several queues.
  invocations = merge([
    for name, f in var.functions : { for key in f.invokers : "${name}.${key}" => { function = name, invoker = key } }
  ]...)
  egress = { for name, f in var.functions : name => f if f.vpc_egress }
}

# Functions are built by their own account, not the Compute Engine default one (new projects no longer
# give it build roles, and it often holds Editor): it writes build logs, reads the sources, and pushes
# the images to the platform's own repository.
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "functions-build"
  display_name = "Cloud Build: functions"
  description  = "Builds the platform's Cloud Functions (build_config.service_account)."
}

resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption; the images are rebuilt from the source archives, which hold no secrets.
  project       = var.project_id
  location      = var.region
  repository_id = "functions"
  description   = "Images of the platform's Cloud Functions."
  format        = "DOCKER"

  # Keep the images of the last 10 builds of each function.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# Once the APIs refuse internet traffic (ingress internal and load balancer), a function calling another
# function's API must send it from the VPC: its egress goes through a Serverless VPC Access connector in
# a subnet with Private Google Access (so *.cloudfunctions.net is reached as internal traffic), and
# Cloud NAT for anything else it calls on the internet (webhooks).
resource "google_compute_network" "egress" {
  count = length(local.egress) > 0 ? 1 : 0

  project                 = var.project_id
  name                    = "functions-egress"
  auto_create_subnetworks = false
}

# The connector only sends: nothing may come in (denied attempts are logged).
resource "google_compute_firewall" "egress_deny_ingress" {
  count = length(local.egress) > 0 ? 1 : 0

  project   = var.project_id
  name      = "functions-egress-deny-ingress"
  network   = google_compute_network.egress[0].id
  direction = "INGRESS"
  priority  = 65534

  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_subnetwork" "egress" {
  count = length(local.egress) > 0 ? 1 : 0

  project                  = var.project_id
  region                   = var.region
  name                     = "functions-egress"
  network                  = google_compute_network.egress[0].id
  ip_cidr_range            = var.egress_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "egress" {
  count = length(local.egress) > 0 ? 1 : 0

  project = var.project_id
  region  = var.region
  name    = "functions-egress"
  network = google_compute_network.egress[0].id
}

resource "google_compute_router_nat" "egress" {
  count = length(local.egress) > 0 ? 1 : 0

  project                            = var.project_id
  region                             = var.region
  name                               = "functions-egress"
  router                             = google_compute_router.egress[0].name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

resource "google_vpc_access_connector" "egress" {
  count = length(local.egress) > 0 ? 1 : 0

  project       = var.project_id
  region        = var.region
  name          = "functions-egress"
  min_instances = 2
  max_instances = 3

  subnet {
    name = google_compute_subnetwork.egress[0].name
  }
}

# Function sources. Objects are named "<function>-<sha256>.zip" after the content hash of the built
# folder (build/manifest.json): an unchanged function keeps its object name, so it does not redeploy.
resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Source archives are build artefacts named by content hash; access is audited by Cloud Audit Logs, no usage-log bucket.
  project                     = var.project_id
  name                        = "${var.project_id}-function-sources"
  location                    = var.region
  force_destroy               = var.environment != "prod"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }
}

data "archive_file" "source" {
  for_each = var.functions

  type             = "zip"
  source_dir       = each.value.source_dir
  output_path      = "${path.root}/.terraform/archives/${each.key}-${each.value.sha256}.zip"
  output_file_mode = "0644"
}

resource "google_storage_bucket_object" "source" {
  for_each = var.functions

  bucket       = google_storage_bucket.sources.name
  name         = "${each.key}-${each.value.sha256}.zip"
  source       = data.archive_file.source[each.key].output_path
  content_type = "application/zip"
}

resource "google_cloudfunctions2_function" "function" {
  for_each = var.functions
  #checkov:skip=CKV_GCP_124:Service functions are ALLOW_INTERNAL_ONLY and the APIs ALLOW_INTERNAL_AND_GCLB behind the load balancer; ALLOW_ALL is only the documented switch for an environment without one (load_balancer.enabled = false).

  project     = var.project_id
  location    = var.region
  name        = each.key
  description = "${each.value.kind} function ${each.key}, built from ${each.value.sha256}"

  build_config {
    runtime           = "python311"
    entry_point       = each.value.entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    service_account_email            = var.service_accounts[each.key]
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    available_cpu                    = each.value.settings.available_cpu
    available_memory                 = each.value.settings.available_memory
    max_instance_request_concurrency = each.value.settings.concurrency
    max_instance_count               = each.value.settings.max_instances
    min_instance_count               = each.value.settings.min_instances
    timeout_seconds                  = each.value.settings.timeout_seconds
    environment_variables            = var.environment_variables[each.key]
    vpc_connector                    = each.value.vpc_egress ? google_vpc_access_connector.egress[0].id : null
    vpc_connector_egress_settings    = each.value.vpc_egress ? "ALL_TRAFFIC" : null
  }

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_storage_bucket_iam_member.build_sources,
    google_artifact_registry_repository_iam_member.build_writer,
  ]
}

# The URL every caller uses and every OIDC token is minted for is computed before the function
# exists (CMP_SERVICE_AUDIENCE, push audiences, scheduler jobs): warn if the deployed one differs.
check "function_urls" {
  assert {
    condition = alltrue([
      for name, f in google_cloudfunctions2_function.function : f.url == var.functions[name].url
    ])
    error_message = "A deployed function URL differs from https://REGION-PROJECT.cloudfunctions.net/NAME: OIDC audiences will not match."
  }
}

# Public APIs: anyone may call them, the app authenticates every request (Identity Platform tokens).
# With the load balancer their ingress only lets its traffic in (and Cloud Armor screens it first).
resource "google_cloud_run_v2_service_iam_member" "public" {
  for_each = local.public
  #checkov:skip=CKV_GCP_102:The HTTP APIs are public by design: every route authenticates the caller's Identity Platform ID token in the app, and ingress admits only the load balancer.

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Pub/Sub push, Cloud Tasks and Cloud Scheduler targets: invocable by their invoker accounts only (a
# queue's invoker on that queue's target, and on nothing else).
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.invocations

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.value.function].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.invoker_emails[each.value.invoker]}"
}

resource "google_cloud_scheduler_job" "job" {
  for_each = local.scheduled

  project          = var.project_id
  region           = var.region
  name             = each.key
  description      = "Calls ${each.key} on its schedule (${each.value.schedule})."
  schedule         = each.value.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${each.value.settings.timeout_seconds}s"

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function[each.key].url

    oidc_token {
      service_account_email = var.invoker_emails["scheduler"]
      audience              = each.value.url
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.invoker]
}
