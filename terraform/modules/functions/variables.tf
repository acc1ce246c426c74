variable "build_service_account" {
  description = "Service account Cloud Build uses (projects/P/serviceAccounts/EMAIL); null = the project's default."
  type        = string
  default     = null
}

variable "environment" {
  description = "One of dev, staging, prod."
  type        = string
}

variable "environment_variables" {
  description = "Function name -> its CMP_* environment variables."
  type        = map(map(string))
}

variable "functions" {
  description = "Functions by name (build/manifest.json): entry point, trigger kind and cron, built folder and its content hash, URL, invoker, ingress and runtime settings."
  type = map(object({
    entry_point = string
    ingress     = string
    invoker     = string # "allUsers", or push | scheduler | tasks (a key of invoker_emails)
    kind        = string
    schedule    = optional(string)
    sha256      = string
    source_dir  = string
    url         = string
    settings = object({
      available_cpu    = string
      available_memory = string
      concurrency      = number
      max_instances    = number
      min_instances    = number
      timeout_seconds  = number
    })
  }))

  validation {
    condition     = alltrue([for f in values(var.functions) : can(regex("^[0-9a-f]{64}$", f.sha256))])
    error_message = "Every function needs the sha256 content hash `make build` writes to build/manifest.json."
  }
}

variable "invoker_emails" {
  description = "push, scheduler, tasks -> the invoker service account's email."
  type        = map(string)
}

variable "project_id" {
  description = "Project of the functions."
  type        = string
}

variable "region" {
  description = "Region of the functions, the source bucket and the scheduler jobs."
  type        = string
}

variable "service_accounts" {
  description = "Function name -> email of the service account it runs as."
  type        = map(string)
}
