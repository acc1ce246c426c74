variable "enqueuers" {
  description = "roles/cloudtasks.enqueuer grants, by key: a queue name and an IAM member."
  type = map(object({
    member = string
    queue  = string
  }))
  default = {}
}

variable "invoker_emails" {
  description = "Invoker key (queue:<name>) -> the email of the account that queue's tasks are signed as."
  type        = map(string)
}

variable "project_id" {
  description = "Project of the queues."
  type        = string
}

variable "queues" {
  description = "Queues by name (catalog queues): retry configuration and rate limits (durations as \"<seconds>s\"), the invoker key of the account its tasks are signed as, and its target's URL (audience) and host."
  type = map(object({
    invoker                   = string
    max_attempts              = number
    max_backoff               = string
    max_concurrent_dispatches = number
    max_dispatches_per_second = number
    max_doublings             = number
    min_backoff               = string
    target_audience           = string
    target_function           = string
    target_host               = string
  }))
}

variable "region" {
  description = "Location of the queues (shared/tasks.py builds queue paths with CMP_LOCATION)."
  type        = string
}
