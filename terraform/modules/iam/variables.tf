variable "functions" {
  description = "Functions by name: the service account id each one runs as, its trigger kind, and its project-level needs (build/manifest.json \"needs\": \"identity-admin\" grants the Identity Platform admin roles; \"webhook-secrets\" grants Secret Manager on webhook-* secrets only, admin to an http function, accessor to a tasks function; \"smtp-relay\" and \"identity-client\" grant nothing here, they only set the relay's settings or the browser API key)."
  type = map(object({
    account_id = string
    kind       = string
    needs      = list(string)
  }))

  validation {
    condition     = alltrue([for f in values(var.functions) : length(setsubtract(f.needs, ["identity-admin", "webhook-secrets", "smtp-relay", "identity-client"])) == 0])
    error_message = "A function needs something this module does not grant: known needs are \"identity-admin\", \"webhook-secrets\", \"smtp-relay\" and \"identity-client\" (functions/manifest.py NEED_KINDS)."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : contains(["http", "tasks"], f.kind) if contains(f.needs, "webhook-secrets")])
    error_message = "\"webhook-secrets\" is granted to http functions (secretmanager.admin) and tasks functions (secretAccessor) only."
  }
}

variable "invokers" {
  description = "Service account ids of the callers of the non-HTTP functions: push (Pub/Sub), scheduler, tasks."
  type        = map(string)

  validation {
    condition     = length(setsubtract(["push", "scheduler", "tasks"], keys(var.invokers))) == 0
    error_message = "invokers needs the push, scheduler and tasks accounts."
  }
}

variable "project_id" {
  description = "Project of the service accounts."
  type        = string
}

variable "project_number" {
  description = "Number of the project: the webhook secrets' IAM condition names secrets as projects/NUMBER/secrets/webhook-*."
  type        = string
}

variable "pubsub_service_agent" {
  description = "Email of the project's Pub/Sub service agent (service-NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com)."
  type        = string
}

variable "tasks_enqueuers" {
  description = "Functions that create Cloud Tasks: they mint OIDC tokens as the tasks invoker account."
  type        = list(string)
  default     = []
}
