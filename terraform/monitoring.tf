# Alerts, each notifying var.notification_channels (set per environment): anything parked on a
# dead-letter topic, any quarantined (malformed) message, 5xx answers and slow answers of a function,
# a backed-up Cloud Tasks queue or push subscription, a partner subscription nobody drains, and a failing
# Cloud Scheduler job; plus the project's monthly budget.

locals {
  # Api.dead_letter_topic: every dead-letter topic's name ends with this suffix.
  dead_letter_suffix = "--dead-letter"
}

resource "google_monitoring_alert_policy" "dead_letter" {
  project               = var.project_id
  display_name          = "CMP ${var.environment}: events parked on a dead-letter topic"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  # The intake publishes an event here after CMP_MAX_DELIVERY_ATTEMPTS failed attempts.
  conditions {
    display_name = "A dead-letter topic received messages"

    condition_threshold {
      filter          = "resource.type = \"pubsub_topic\" AND metric.type = \"pubsub.googleapis.com/topic/send_message_operation_count\" AND resource.label.topic_id = monitoring.regex.full_match(\".*${local.dead_letter_suffix}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.topic_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  # Pub/Sub's own dead-letter policy (the backstop) forwarded messages a function never answered.
  conditions {
    display_name = "A push subscription dead-lettered messages"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/dead_letter_message_count\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.subscription_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "An event failed every delivery attempt and was parked. Pull `<api-slug>--dead-letter--inspect` (or read the `_dead_letters` collection) for the envelope and the error, fix the handler, and republish."
  }
}

# shared/intake.py logs "event quarantined" (with the api and the reason) for every malformed message.
resource "google_logging_metric" "event_quarantined" {
  project = var.project_id
  name    = "cmp-event-quarantined"
  filter  = "(resource.type=\"cloud_run_revision\" OR resource.type=\"cloud_function\") AND jsonPayload.message=\"event quarantined\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "CMP events quarantined"

    labels {
      key         = "api"
      value_type  = "STRING"
      description = "The subscribing API that quarantined the message."
    }
  }

  label_extractors = {
    api = "EXTRACT(jsonPayload.api)"
  }
}

# A log-based metric is usable in an alert policy a little while after it is created (until then the
# policy is refused: "Cannot find metric(s) that match type"): the policies that use one wait for this.
resource "time_sleep" "log_metrics_ready" {
  create_duration = "60s"

  triggers = {
    metrics = join(",", [google_logging_metric.event_quarantined.id, google_logging_metric.scheduler_failed.id])
  }
}

resource "google_monitoring_alert_policy" "quarantine" {
  project               = var.project_id
  display_name          = "CMP ${var.environment}: messages quarantined by an event intake"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "A malformed message was quarantined"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.event_quarantined.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.api"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A message failed validation (bad JSON, schema violation, unknown or unsubscribed type) and was acknowledged. The `_quarantine` collection holds it with the reason: usually a publisher deployed a payload that no longer matches its schema."
  }

  depends_on = [time_sleep.log_metrics_ready]
}

# Functions (their Cloud Run services): the share of 5xx answers, and the p95 latency, per function.
resource "google_monitoring_alert_policy" "server_errors" {
  project               = var.project_id
  display_name          = "CMP ${var.environment}: a function answers 5xx"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "More than ${var.alerts.error_ratio * 100}% of a function's answers are 5xx"

    condition_threshold {
      filter             = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.label.response_code_class = \"5xx\""
      denominator_filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alerts.error_ratio
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function answers 5xx: read its logs (Logs Explorer, resource cloud_run_revision, service_name as in the incident). Event and task functions are retried; HTTP clients see the errors."
  }
}

resource "google_monitoring_alert_policy" "latency" {
  project               = var.project_id
  display_name          = "CMP ${var.environment}: a function answers slowly"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "p95 latency of a function above ${var.alerts.latency_p95_ms} ms"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_latencies\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.latency_p95_ms
      duration        = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_95"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function's p95 latency is high: check its instance count against max_instances (function_overrides), Firestore contention, and the services it calls."
  }
}

# Backlogs: tasks waiting in a queue, messages waiting in a push subscription, and the oldest message a
# partner team has not pulled (their subscriptions keep 7 days: past that, messages are lost).
resource "google_monitoring_alert_policy" "backlog" {
  project               = var.project_id
  display_name          = "CMP ${var.environment}: work is backing up"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "A Cloud Tasks queue holds more than ${var.alerts.queue_depth} tasks"

    condition_threshold {
      filter          = "resource.type = \"cloud_tasks_queue\" AND metric.type = \"cloudtasks.googleapis.com/queue/depth\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.queue_depth
      duration        = "600s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.queue_id"]
      }
    }
  }

  conditions {
    display_name = "A push subscription holds more than ${var.alerts.unacked_push_messages} undelivered messages"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND metadata.user_labels.purpose = \"push\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.unacked_push_messages
      duration        = "600s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.subscription_id"]
      }
    }
  }

  conditions {
    display_name = "A partner subscription's oldest unacknowledged message is older than ${var.alerts.oldest_unacked_s} s"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND metadata.user_labels.purpose = \"partner\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.oldest_unacked_s
      duration        = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.subscription_id"]
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Work is waiting: a queue's target or a push endpoint is failing or too slow (see the 5xx and latency alerts), or a partner team stopped pulling its subscription (they keep 7 days)."
  }
}

# Cloud Scheduler logs every attempt; a failed one (the target answered an error or timed out) is an
# AttemptFinished entry at ERROR.
resource "google_logging_metric" "scheduler_failed" {
  project = var.project_id
  name    = "cmp-scheduler-attempt-failed"
  filter  = "resource.type=\"cloud_scheduler_job\" AND jsonPayload.@type=\"type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "CMP scheduler attempts failed"

    labels {
      key         = "job"
      value_type  = "STRING"
      description = "The Cloud Scheduler job (the function it calls)."
    }
  }

  label_extractors = {
    job = "EXTRACT(resource.labels.job_id)"
  }
}

resource "google_monitoring_alert_policy" "scheduler_failures" {
  project               = var.project_id
  display_name          = "CMP ${var.environment}: a scheduled function keeps failing"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "At least ${var.alerts.scheduler_failures} failed runs of a job in 15 minutes"

    condition_threshold {
      filter          = "resource.type = \"cloud_scheduler_job\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.scheduler_failed.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.scheduler_failures - 1
      duration        = "0s"

      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.job"]
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A scheduled function (the outbox relay, the audit sweeper, the notification digest) keeps failing: its backstop work is not being done. Read the function's logs."
  }

  depends_on = [time_sleep.log_metrics_ready]
}

resource "google_billing_budget" "project" {
  billing_account = var.billing_account
  display_name    = "cmp-${var.environment}"

  budget_filter {
    projects = ["projects/${data.google_project.this.number}"]
  }

  amount {
    specified_amount {
      currency_code = var.budget.currency
      units         = tostring(var.budget.amount)
    }
  }

  dynamic "threshold_rules" {
    for_each = var.budget.thresholds
    content {
      threshold_percent = threshold_rules.value
    }
  }

  all_updates_rule {
    monitoring_notification_channels = var.notification_channels
    disable_default_iam_recipients   = false
  }

  depends_on = [time_sleep.apis_ready]
}
