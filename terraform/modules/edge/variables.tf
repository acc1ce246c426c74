variable "default_function" {
  description = "The public function that answers paths no /<function>/ prefix matches (e.g. web pages at /); null = the first public function by name (it answers 404 for paths it does not serve)."
  type        = string
  default     = null
}

variable "domains" {
  description = "Domains of the Google-managed certificate; their DNS A records must point at the address output."
  type        = list(string)

  validation {
    condition     = length(var.domains) > 0
    error_message = "The load balancer needs at least one domain for its certificate."
  }
}

variable "functions" {
  description = "Public (HTTP) functions by name: each is served at https://DOMAIN/<name>/ through a serverless NEG."
  type        = set(string)
}

variable "name" {
  description = "Prefix of the load balancer's resources."
  type        = string
}

variable "project_id" {
  description = "Project of the load balancer."
  type        = string
}

variable "rate_limit" {
  description = "Cloud Armor rate limit per client IP: requests per interval, beyond which the client gets 429."
  type = object({
    count        = number
    interval_sec = number
  })
}

variable "region" {
  description = "Region of the functions (and their serverless NEGs)."
  type        = string
}

variable "waf_rules" {
  description = "Cloud Armor preconfigured WAF rule sets that deny (403), with their sensitivity level."
  type        = map(number)
}
