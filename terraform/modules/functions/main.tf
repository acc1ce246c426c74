locals {
  public    = { for name, f in var.functions : name => f if f.invoker == "allUsers" }
  private   = { for name, f in var.functions : name => f if f.invoker != "allUsers" }
  scheduled = { for name, f in var.functions : name => f if f.schedule != null }
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
  #checkov:skip=CKV_GCP_124:The HTTP APIs are public by design (authentication is in the app); service functions accept only their invoker's OIDC token (run.invoker), and var.service_ingress can restrict them to internal traffic.

  project     = var.project_id
  location    = var.region
  name        = each.key
  description = "${each.value.kind} function ${each.key}, built from ${each.value.sha256}"

  build_config {
    runtime         = "python311"
    entry_point     = each.value.entry_point
    service_account = var.build_service_account

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
  }
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

# Public APIs: anyone may reach them, the app authenticates every request (Identity Platform tokens).
resource "google_cloud_run_v2_service_iam_member" "public" {
  for_each = local.public
  #checkov:skip=CKV_GCP_102:The HTTP APIs are public by design: every route authenticates the caller's Identity Platform ID token in the app.

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Pub/Sub push, Cloud Tasks and Cloud Scheduler targets: invocable by their one invoker account only.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.private

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].service_config[0].service
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
