variable "functions" {
  description = "Functions by name: the service account id each one runs as, its trigger kind, and its project-level needs (build/manifest.json \"needs\": \"identity-admin\" grants the Identity Platform admin roles)."
  type = map(object({
    account_id = string
    kind       = string
    needs      = list(string)
  }))

  validation {
    condition     = alltrue([for f in values(var.functions) : length(setsubtract(f.needs, ["identity-admin"])) == 0])
    error_message = "A function needs something this module does not grant: known needs are \"identity-admin\" (functions/manifest.py NEED_KINDS)."
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

variable "pubsub_service_agent" {
  description = "Email of the project's Pub/Sub service agent (service-NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com)."
  type        = string
}

variable "tasks_enqueuers" {
  description = "Functions that create Cloud Tasks: they mint OIDC tokens as the tasks invoker account."
  type        = list(string)
  default     = []
}
