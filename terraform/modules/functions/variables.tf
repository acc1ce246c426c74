variable "egress_cidr" {
  description = "The /28 of the VPC connector that carries the egress of functions calling other functions' APIs."
  type        = string
  default     = "10.8.0.0/28"
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
    invokers    = list(string) # keys of invoker_emails: push | scheduler | queue:<name>
    kind        = string
    public      = bool # run.invoker for allUsers: an HTTP API (authentication is in the app)
    schedule    = optional(string)
    sha256      = string
    source_dir  = string
    url         = string
    vpc_egress  = bool
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
    condition     = alltrue([for f in values(var.functions) : contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], f.ingress) && (f.public || f.ingress == "ALLOW_INTERNAL_ONLY")])
    error_message = "Ingress is ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB, and only public functions take more than internal traffic."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : can(regex("^[0-9a-f]{64}$", f.sha256))])
    error_message = "Every function needs the sha256 content hash `make build` writes to build/manifest.json."
  }
}

variable "invoker_emails" {
  description = "push, scheduler, queue:<name> -> the invoker service account's email."
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
