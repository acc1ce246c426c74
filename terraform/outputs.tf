output "dead_letter_topics" {
  description = "Dead-letter topic name -> id."
  value       = module.pubsub.dead_letter_topics
}

output "function_build_service_account" {
  description = "The account Cloud Build builds the functions as."
  value       = module.functions.build_service_account
}

output "function_service_accounts" {
  description = "Function name -> the service account it runs as."
  value       = module.iam.function_emails
}

output "function_urls" {
  description = "Function name -> URL."
  value       = module.functions.urls
}

output "gke_cluster" {
  description = "The Autopilot cluster (gcloud container clusters get-credentials NAME --region LOCATION)."
  value       = module.gke.cluster
}

output "load_balancer_address" {
  description = "The load balancer's IP address: the DNS A record of every load_balancer.domains entry (null without a load balancer)."
  value       = one(module.edge[*].address)
}

output "partner_subscriptions" {
  description = "Partner pull subscription name -> id."
  value       = module.pubsub.partner_subscriptions
}

output "public_urls" {
  description = "Public function name -> the URL clients use: through the load balancer, or the function's own URL without one."
  value = var.load_balancer.enabled ? module.edge[0].urls : {
    for name, url in module.functions.urls : name => url if local.functions[name].public
  }
}

output "push_subscriptions" {
  description = "Push subscription name -> id."
  value       = module.pubsub.push_subscriptions
}

output "queues" {
  description = "Cloud Tasks queue name -> id."
  value       = module.tasks.queues
}

output "secrets" {
  description = "Secret name -> id (add versions with gcloud secrets versions add)."
  value       = module.secrets.secrets
}

output "skipped_subscribers" {
  description = "Catalog APIs that subscribe to events but have no events function yet: no push subscription until they do."
  value       = local.skipped_subscribers
}

output "topic_schemas" {
  description = "Event topic -> JSON Schema URI of its payload (validated by the intake: Pub/Sub has no JSON Schema support)."
  value       = module.pubsub.topic_schemas
}

output "topics" {
  description = "Event topic name -> id."
  value       = module.pubsub.topics
}

output "workload_service_accounts" {
  description = "GKE workload -> Google service account email to annotate its Kubernetes service account with."
  value       = module.gke.workload_emails
}
