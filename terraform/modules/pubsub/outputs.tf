output "dead_letter_topics" {
  description = "Dead-letter topic name -> id."
  value       = { for name, topic in google_pubsub_topic.dead_letter : name => topic.id }
}

output "partner_subscriptions" {
  description = "Partner subscription name -> id."
  value       = { for name, sub in google_pubsub_subscription.partner : name => sub.id }
}

output "push_subscriptions" {
  description = "Push subscription name -> id."
  value       = { for name, sub in google_pubsub_subscription.push : name => sub.id }
}

output "topic_schemas" {
  description = "Event topic name -> JSON Schema URI of its payload (validated by the intake, not by Pub/Sub)."
  value       = { for name, topic in var.topics : name => topic.schema_uri }
}

output "topics" {
  description = "Event topic name -> id."
  value       = { for name, topic in google_pubsub_topic.event : name => topic.id }
}
