variable "fields" {
  description = "Single-field configurations by \"<collection group>/<field>\": indexes (null = inherit, [] = not indexed) and TTL."
  type = map(object({
    collection = string
    field      = string
    ttl        = bool
    indexes = optional(list(object({
      array_config = optional(string)
      order        = optional(string)
      query_scope  = optional(string, "COLLECTION")
    })))
  }))
  default = {}
}

variable "indexes" {
  description = "Composite indexes by a key naming collection group, scope and fields (schemas/firestore.indexes.json)."
  type = map(object({
    collection  = string
    query_scope = string
    fields = list(object({
      array_config = optional(string)
      field_path   = string
      order        = optional(string)
    }))
  }))
  default = {}

  validation {
    condition     = alltrue([for ix in values(var.indexes) : contains(["COLLECTION", "COLLECTION_GROUP"], ix.query_scope)])
    error_message = "query_scope must be COLLECTION or COLLECTION_GROUP."
  }
}

variable "location" {
  description = "Location of the (default) database: a region or a multi-region (eur3, nam5)."
  type        = string
}

variable "project_id" {
  description = "Project of the database."
  type        = string
}

variable "protect" {
  description = "Production safety: point-in-time recovery and delete protection."
  type        = bool
}
