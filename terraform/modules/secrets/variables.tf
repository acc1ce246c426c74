variable "accessors" {
  description = "roles/secretmanager.secretAccessor grants, by key: a secret name and an IAM member."
  type = map(object({
    member = string
    secret = string
  }))
  default = {}
}

variable "project_id" {
  description = "Project of the secrets."
  type        = string
}

variable "secrets" {
  description = "Secrets by name: replica locations (empty = automatic replication). Never values."
  type = map(object({
    locations = optional(list(string), [])
  }))
  default = {}
}
