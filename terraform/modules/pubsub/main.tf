locals {
  topic_ids = merge(
    { for name, topic in google_pubsub_topic.event : name => topic.id },
    { for name, topic in google_pubsub_topic.dead_letter : name => topic.id },
  )
  subscription_ids = merge(
    { for name, sub in google_pubsub_subscription.push : name => sub.id },
    { for name, sub in google_pubsub_subscription.partner : name => sub.id },
    { for name, sub in google_pubsub_subscription.dead_letter : name => sub.id },
  )
  # Partners and operators may be away for days: keep what they have not acknowledged for 7 days.
  pull_retention = "604800s"
}

# One topic per catalog event. Pub/Sub schemas support AVRO and PROTOCOL_BUFFER only, not JSON Schema,
# so the payload's JSON Schema is not attached to the topic: every events function validates the
# CloudEvent and its payload (shared/intake.py) and quarantines what does not match. The schema URI
# is exposed as the topic_schemas output (a label value cannot hold ':' or '/').
resource "google_pubsub_topic" "event" {
  for_each = var.topics
  #checkov:skip=CKV_GCP_83:Google-managed encryption by default; set kms_key_name to use a customer-managed key.

  project      = var.project_id
  name         = each.key
  labels       = each.value.labels
  kms_key_name = var.kms_key_name

  dynamic "message_storage_policy" {
    for_each = length(var.persistence_regions) > 0 ? [var.persistence_regions] : []
    content {
      allowed_persistence_regions = message_storage_policy.value
    }
  }
}

resource "google_pubsub_topic" "dead_letter" {
  for_each = var.dead_letter_topics
  #checkov:skip=CKV_GCP_83:Google-managed encryption by default; set kms_key_name to use a customer-managed key.

  project      = var.project_id
  name         = each.key
  labels       = { api = each.value.api_slug, purpose = "dead-letter" }
  kms_key_name = var.kms_key_name

  dynamic "message_storage_policy" {
    for_each = length(var.persistence_regions) > 0 ? [var.persistence_regions] : []
    content {
      allowed_persistence_regions = message_storage_policy.value
    }
  }
}

resource "google_pubsub_subscription" "dead_letter" {
  for_each = var.dead_letter_subscriptions

  project                    = var.project_id
  name                       = each.key
  topic                      = google_pubsub_topic.dead_letter[each.value.topic].id
  ack_deadline_seconds       = 60
  enable_message_ordering    = true
  message_retention_duration = local.pull_retention
  labels                     = { purpose = "dead-letter-inspection" }

  expiration_policy {
    ttl = "" # never expires, however quiet the topic
  }
}

# A push subscription per (event, subscribing API) whose events function exists. The OIDC token is
# minted for the function's URL (CMP_SERVICE_AUDIENCE of the function checks exactly that).
resource "google_pubsub_subscription" "push" {
  for_each = var.push_subscriptions

  project                 = var.project_id
  name                    = each.key
  topic                   = google_pubsub_topic.event[each.value.topic].id
  ack_deadline_seconds    = 60
  enable_message_ordering = true
  labels                  = { purpose = "push" }

  push_config {
    push_endpoint = var.function_urls[each.value.function]

    oidc_token {
      service_account_email = var.push_invoker_email
      audience              = each.value.audience
    }
  }

  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "60s"
  }

  # The intake counts attempts itself and parks an event after max_delivery_attempts; this policy is
  # the backstop for a function that cannot answer at all.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.value.dead_letter_topic].id
    max_delivery_attempts = var.max_delivery_attempts + 5
  }

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "partner" {
  for_each = var.partner_subscriptions

  project                    = var.project_id
  name                       = each.key
  topic                      = google_pubsub_topic.event[each.value.topic].id
  ack_deadline_seconds       = 60
  enable_message_ordering    = true
  message_retention_duration = local.pull_retention
  labels                     = { partner = each.value.partner, purpose = "partner" }

  expiration_policy {
    ttl = ""
  }
}

# --- IAM: topic by topic, subscription by subscription; nothing at project level ----------------------

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = var.publishers

  project = var.project_id
  topic   = local.topic_ids[each.value.topic]
  role    = "roles/pubsub.publisher"
  member  = each.value.member
}

resource "google_pubsub_subscription_iam_member" "subscriber" {
  for_each = var.subscribers

  project      = var.project_id
  subscription = lookup(local.subscription_ids, each.value.subscription, "projects/${var.project_id}/subscriptions/${each.value.subscription}")
  role         = "roles/pubsub.subscriber"
  member       = each.value.member
}

# Pub/Sub's dead-lettering runs as its service agent: it publishes to the dead-letter topics and
# acknowledges (subscribes on) the source subscriptions it forwards from.
resource "google_pubsub_topic_iam_member" "service_agent_dead_letter" {
  for_each = var.dead_letter_topics

  project = var.project_id
  topic   = google_pubsub_topic.dead_letter[each.key].id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.service_agent}"
}

resource "google_pubsub_subscription_iam_member" "service_agent_source" {
  for_each = var.push_subscriptions

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${var.service_agent}"
}
