# Alerts: anything parked on a dead-letter topic, and any quarantined (malformed) message; plus the
# project's monthly budget.

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

  depends_on = [google_project_service.service]
}
