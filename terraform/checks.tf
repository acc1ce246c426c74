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

check "external_publishers_are_external_topics" {
  assert {
    condition     = length(setsubtract(keys(var.external_publishers), local.external_topics)) == 0
    error_message = "external_publishers names a topic that is not an external event of schemas/catalog.json (the platform's own topics are published by its functions only)."
  }
}

# The Identity Platform admin roles are project-wide: they belong on functions the internet cannot call.
check "identity_admin_only_on_private_functions" {
  assert {
    condition     = alltrue([for f in values(local.functions) : !f.public if contains(f.needs, "identity-admin")])
    error_message = "A public (http) function needs identity-admin: move Identity Platform administration to its API's tasks function."
  }
}

check "load_balancer_default_function_is_public" {
  assert {
    condition     = var.load_balancer.default_function == null || try(local.functions[var.load_balancer.default_function].public, false)
    error_message = "load_balancer.default_function must be an http function of build/manifest.json."
  }
}

# A package's functions sign their tasks as their queue's invoker (CMP_TASKS_INVOKER_ACCOUNT): one
# queue per package. The queue-level OIDC override holds either way; this keeps the two in agreement.
check "one_queue_per_package" {
  assert {
    condition     = alltrue([for queues in values(local.package_queues) : length(queues) <= 1])
    error_message = "A package's tasks target more than one queue: CMP_TASKS_INVOKER_ACCOUNT is left unset for it."
  }
}

check "queue_targets_are_tasks_functions" {
  assert {
    condition     = alltrue([for q in values(local.queues) : try(local.functions[q.target_function].kind, null) == "tasks"])
    error_message = "A catalog queue targets a function build/manifest.json does not have as a tasks function: nobody may invoke it."
  }
}
