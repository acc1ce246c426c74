variable "functions" {
  description = "Functions by name: the service account id each one runs as, its trigger kind, and its project-level needs (build/manifest.json \"needs\": \"identity-admin\" grants the Identity Platform admin roles; \"webhook-secrets\" grants Secret Manager on the API's own secret-name prefix only, a create/version/read/delete custom role to an http function, accessor to a tasks function; \"smtp-relay\" and \"identity-client\" grant nothing here, they only set the relay's settings or the browser API key)."
  type = map(object({
    account_id    = string
    kind          = string
    needs         = list(string)
    secret_prefix = optional(string) # "<api-slug>--": the run-time secrets of a "webhook-secrets" function
  }))

  # Which needs exist is functions/manifest.py's (NEED_KINDS, checked at build): this module acts on
  # "identity-admin" and "webhook-secrets" and ignores the others (settings, not grants).
  validation {
    condition     = alltrue([for f in values(var.functions) : f.secret_prefix != null && can(regex("^[a-z0-9-]+--$", f.secret_prefix)) if contains(f.needs, "webhook-secrets")])
    error_message = "A \"webhook-secrets\" function needs its API's secret_prefix (\"<api-slug>--\")."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : contains(["http", "tasks"], f.kind) if contains(f.needs, "webhook-secrets")])
    error_message = "\"webhook-secrets\" is granted to http functions (the run-time secrets role) and tasks functions (secretAccessor) only."
  }
}

variable "invokers" {
  description = "Service account ids of the callers of the non-HTTP functions: push (Pub/Sub), scheduler, and queue:<name> per Cloud Tasks queue."
  type        = map(string)

  validation {
    condition     = length(setsubtract(["push", "scheduler"], keys(var.invokers))) == 0 && alltrue([for key in keys(var.invokers) : contains(["push", "scheduler"], key) || startswith(key, "queue:")])
    error_message = "invokers needs the push and scheduler accounts, and queue:<name> keys for the queues."
  }
}

variable "project_id" {
  description = "Project of the service accounts."
  type        = string
}

variable "project_number" {
  description = "Number of the project: the run-time secrets' IAM conditions name secrets as projects/NUMBER/secrets/PREFIX*."
  type        = string
}

variable "pubsub_service_agent" {
  description = "Email of the project's Pub/Sub service agent (service-NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com)."
  type        = string
}

variable "tasks_act_as" {
  description = "iam.serviceAccountUser grants on queue invokers, by key: the function that creates the queue's tasks and the invoker key (\"queue:<name>\") it names as their OIDC identity."
  type = map(object({
    function = string
    invoker  = string
  }))
  default = {}
}
