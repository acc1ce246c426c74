variable "cluster" {
  description = "Cluster name, control-plane access and the VPC ranges of the cluster's own network."
  type = object({
    master_authorized_networks = list(object({
      cidr_block   = string
      display_name = string
    }))
    master_ipv4_cidr_block = optional(string)
    name                   = string
    pods_cidr              = string
    private_endpoint       = bool
    services_cidr          = string
    subnet_cidr            = string
  })
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster (production)."
  type        = bool
}

variable "project_id" {
  description = "Project of the cluster and the workload service accounts."
  type        = string
}

variable "region" {
  description = "Region of the (regional) Autopilot cluster."
  type        = string
}

variable "workloads" {
  description = "Workloads by name (= Google service account id): the Kubernetes namespace and service account that impersonate it, and whether it uses Firestore."
  type = map(object({
    firestore = bool
    ksa       = string
    namespace = string
  }))
}
