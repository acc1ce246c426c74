# Variables in alphabetical order. project_id has no default; the rest fit a standard project.

variable "billing_account" {
  description = "Billing account of the project's budget (XXXXXX-XXXXXX-XXXXXX): the deployer gets roles/billing.costsManager on it. null = granted by the billing administrator by hand."
  type        = string
  default     = null

  validation {
    condition     = var.billing_account == null || can(regex("^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$", var.billing_account))
    error_message = "billing_account must look like 0X0X0X-0X0X0X-0X0X0X (upper-case hex)."
  }
}

variable "deployer_members" {
  description = "IAM members that may impersonate the deployer service account (roles/iam.serviceAccountTokenCreator on it): the delivery pipeline's Cloud Build account of the tooling project, and break-glass operators."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.deployer_members : can(regex("^(serviceAccount|group|user|principal|principalSet):", m))])
    error_message = "deployer_members entries must be IAM members such as serviceAccount:NAME@PROJECT.iam.gserviceaccount.com."
  }
}

variable "project_id" {
  description = "The environment's Google Cloud project (created, and linked to a billing account, beforehand)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lower-case letters, digits and hyphens)."
  }
}

variable "region" {
  description = "Region of the state bucket (the platform's region)."
  type        = string
  default     = "europe-west1"
}

variable "state_bucket" {
  description = "Name of the bucket holding every Terraform state of this environment; null = \"<project_id>-tfstate\"."
  type        = string
  default     = null
}
