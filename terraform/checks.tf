# Plan-time consistency checks between the variables and the catalog/manifest (warnings).

check "function_overrides_are_functions" {
  assert {
    condition     = length(setsubtract(keys(var.function_overrides), keys(local.functions))) == 0
    error_message = "function_overrides names a function that build/manifest.json does not have."
  }
}

check "partner_members_are_catalog_partners" {
  assert {
    condition     = length(setsubtract(keys(var.partner_members), [for p in local.catalog.partners : p.slug])) == 0
    error_message = "partner_members has keys that are not partner slugs of schemas/catalog.json."
  }
}

check "secret_accessors_are_functions" {
  assert {
    condition     = alltrue([for a in values(local.secret_accessors) : contains(keys(local.functions), a.function)])
    error_message = "secrets[*].accessors names a function that build/manifest.json does not have."
  }
}

check "service_account_ids_are_unique" {
  assert {
    condition     = length(distinct(values(local.function_account_ids))) == length(local.function_account_ids)
    error_message = "Two functions map to the same service account id: rename one."
  }
}

check "workload_partners_are_catalog_partners" {
  assert {
    condition     = length(setsubtract(flatten([for w in values(var.workloads) : w.partners]), [for p in local.catalog.partners : p.slug])) == 0
    error_message = "workloads[*].partners names a partner slug that schemas/catalog.json does not have."
  }
}
