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

variable "region" {
  description = "The environment's region: where a secret without locations is replicated."
  type        = string
}

variable "secrets" {
  description = "Secrets by name: replica locations (empty = the environment's region). Never values."
  type = map(object({
    locations = optional(list(string), [])
  }))
  default = {}
}
