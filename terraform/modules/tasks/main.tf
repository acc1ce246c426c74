resource "google_cloud_tasks_queue" "queue" {
  for_each = var.queues

  project  = var.project_id
  location = var.region
  name     = each.key

  retry_config {
    max_attempts  = each.value.max_attempts
    min_backoff   = each.value.min_backoff
    max_backoff   = each.value.max_backoff
    max_doublings = each.value.max_doublings
  }

  rate_limits {
    max_dispatches_per_second = each.value.max_dispatches_per_second
    max_concurrent_dispatches = each.value.max_concurrent_dispatches
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  # The queue, not the code creating a task, decides who the task calls and as whom: every task gets
  # the queue's own invoker's OIDC token for the target's URL (invoker of that one function only), and
  # goes to the project's functions domain over HTTPS, whatever URL or token the task asked for.
  http_target {
    http_method = "POST"

    uri_override {
      scheme                    = "HTTPS"
      host                      = each.value.target_host
      uri_override_enforce_mode = "ALWAYS"
    }

    oidc_token {
      service_account_email = var.invoker_emails[each.value.invoker]
      audience              = each.value.target_audience
    }
  }
}

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = var.enqueuers

  project  = var.project_id
  location = var.region
  name     = google_cloud_tasks_queue.queue[each.value.queue].name
  role     = "roles/cloudtasks.enqueuer"
  member   = each.value.member
}
