# Consistency checks (warnings): the variables against the catalog and the manifest at plan time, and
# the created service accounts against the emails locals.tf derives, once they exist.

# CMP_SERVICE_CALLERS (locals.tf) names the callers by the email their account id gives: warn if the
# created accounts differ, or the callee would refuse their tokens.
check "function_emails_match_the_service_accounts" {
  assert {
    condition     = alltrue([for name, email in module.iam.function_emails : email == local.function_emails[name]])
    error_message = "A function's service account email differs from ACCOUNT_ID@PROJECT.iam.gserviceaccount.com: CMP_SERVICE_CALLERS will not match it."
  }
}

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

# functions/manifest.py refuses these already; a hand-edited manifest is caught here.
check "service_calls_target_http_functions" {
  assert {
    condition     = alltrue(flatten([for f in values(local.functions) : [for callee in f.calls : try(local.functions[callee].kind, null) == "http"]]))
    error_message = "build/manifest.json: a function \"calls\" something that is not an http function of the manifest."
  }
}

check "workload_partners_are_catalog_partners" {
  assert {
    condition     = length(setsubtract(flatten([for w in values(var.workloads) : w.partners]), [for p in local.catalog.partners : p.slug])) == 0
    error_message = "workloads[*].partners names a partner slug that schemas/catalog.json does not have."
  }
}
