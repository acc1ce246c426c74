variable "dead_letter_subscriptions" {
  description = "Pull subscriptions operators use to inspect parked events, by name: the API and its dead-letter topic."
  type = map(object({
    api   = string
    topic = string
  }))
}

variable "dead_letter_topics" {
  description = "Dead-letter topics by name: the API whose parked events they hold."
  type = map(object({
    api      = string
    api_slug = string
  }))
}

variable "function_urls" {
  description = "Function name -> deployed URL: the push endpoints."
  type        = map(string)
}

variable "kms_key_name" {
  description = "Cloud KMS key encrypting topic messages (CMEK); null = Google-managed encryption."
  type        = string
  default     = null
}

variable "max_delivery_attempts" {
  description = "The intake parks an event after this many attempts; Pub/Sub's dead-letter policy allows 5 more, as a backstop."
  type        = number
}

variable "partner_subscriptions" {
  description = "Pull subscriptions of partner teams, by name: the partner slug and the topic."
  type = map(object({
    partner = string
    topic   = string
  }))
}

variable "persistence_regions" {
  description = "Regions Pub/Sub may store messages in; empty = the organisation's default."
  type        = list(string)
  default     = []
}

variable "project_id" {
  description = "Project of the topics and subscriptions."
  type        = string
}

variable "publishers" {
  description = "roles/pubsub.publisher grants, by key: a topic (event or dead-letter topic name) and an IAM member."
  type = map(object({
    member = string
    topic  = string
  }))
  default = {}
}

variable "push_invoker_email" {
  description = "Service account whose OIDC token every push request carries."
  type        = string
}

variable "push_subscriptions" {
  description = "Push subscriptions by name: topic, subscribing API, its events function, the token audience and its dead-letter topic."
  type = map(object({
    api               = string
    audience          = string
    dead_letter_topic = string
    function          = string
    topic             = string
  }))
}

variable "service_agent" {
  description = "Email of the project's Pub/Sub service agent."
  type        = string
}

variable "subscribers" {
  description = "roles/pubsub.subscriber grants, by key: a subscription name (created here or elsewhere in the project) and an IAM member."
  type = map(object({
    member       = string
    subscription = string
  }))
  default = {}
}

variable "topics" {
  description = "Event topics by name: labels and the payload's JSON Schema URI."
  type = map(object({
    event      = string
    labels     = map(string)
    schema_uri = string
  }))
}
