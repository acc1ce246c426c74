# The public surface: one external HTTPS load balancer (global, EXTERNAL_MANAGED) in front of every public
# function, each behind its own serverless NEG at https://DOMAIN/<function>/ (the prefix is stripped, so
# a function sees the paths it serves locally), all screened by one Cloud Armor policy: preconfigured
# WAF rules, and a rate limit per client IP. The functions' ingress admits this load balancer and
# internal traffic only (locals.tf), so nothing reaches them around it.

locals {
  names           = sort(tolist(var.functions))
  default_service = coalesce(var.default_function, local.names[0])
}

resource "google_compute_region_network_endpoint_group" "function" {
  for_each = var.functions

  project               = var.project_id
  region                = var.region
  name                  = "${var.name}-${replace(each.key, "_", "-")}"
  network_endpoint_type = "SERVERLESS"

  cloud_function {
    function = each.key
  }
}

resource "google_compute_backend_service" "function" {
  for_each = var.functions

  project               = var.project_id
  name                  = "${var.name}-${replace(each.key, "_", "-")}"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = google_compute_security_policy.edge.id

  backend {
    group = google_compute_region_network_endpoint_group.function[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_compute_url_map" "https" {
  project         = var.project_id
  name            = "${var.name}-https"
  default_service = google_compute_backend_service.function[local.default_service].id

  host_rule {
    hosts        = ["*"]
    path_matcher = "functions"
  }

  path_matcher {
    name            = "functions"
    default_service = google_compute_backend_service.function[local.default_service].id

    dynamic "route_rules" {
      for_each = local.names
      content {
        priority = route_rules.key + 1
        service  = google_compute_backend_service.function[route_rules.value].id

        match_rules {
          prefix_match = "/${route_rules.value}/"
        }

        route_action {
          url_rewrite {
            path_prefix_rewrite = "/"
          }
        }
      }
    }
  }
}

resource "google_compute_global_address" "edge" {
  project = var.project_id
  name    = var.name
}

resource "google_compute_managed_ssl_certificate" "edge" {
  project = var.project_id
  name    = "${var.name}-${substr(sha1(join(",", sort(var.domains))), 0, 8)}"

  managed {
    domains = var.domains
  }

  # A new certificate (new domains) must exist before the proxy lets go of the old one.
  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_ssl_policy" "edge" {
  project         = var.project_id
  name            = var.name
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "edge" {
  project          = var.project_id
  name             = var.name
  url_map          = google_compute_url_map.https.id
  ssl_certificates = [google_compute_managed_ssl_certificate.edge.id]
  ssl_policy       = google_compute_ssl_policy.edge.id
}

resource "google_compute_global_forwarding_rule" "https" {
  project               = var.project_id
  name                  = "${var.name}-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.edge.id
  port_range            = "443"
  target                = google_compute_target_https_proxy.edge.id
}

# Plain HTTP only redirects to HTTPS.
resource "google_compute_url_map" "redirect" {
  project = var.project_id
  name    = "${var.name}-redirect"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "redirect" {
  project = var.project_id
  name    = "${var.name}-redirect"
  url_map = google_compute_url_map.redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  project               = var.project_id
  name                  = "${var.name}-http"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.edge.id
  port_range            = "80"
  target                = google_compute_target_http_proxy.redirect.id
}

# Cloud Armor: the common attack signatures (SQL injection, XSS, file inclusion, remote code execution,
# scanners, protocol attacks, session fixation, Log4j) are refused with 403; each client IP is held to
# rate_limit requests per interval (429 beyond); everything else passes to the app, which authenticates.
resource "google_compute_security_policy" "edge" {
  project     = var.project_id
  name        = var.name
  description = "WAF rules and a per-client rate limit in front of the platform's public APIs."
  type        = "CLOUD_ARMOR"

  advanced_options_config {
    json_parsing = "STANDARD"
    log_level    = "NORMAL"
  }

  dynamic "rule" {
    for_each = { for i, name in sort(keys(var.waf_rules)) : name => 1000 + i }
    content {
      action      = "deny(403)"
      priority    = rule.value
      description = "Preconfigured WAF: ${rule.key}"

      match {
        expr {
          expression = "evaluatePreconfiguredWaf('${rule.key}', {'sensitivity': ${var.waf_rules[rule.key]}})"
        }
      }
    }
  }

  # CVE-2021-44228 and CVE-2021-45046 (Log4j lookups in headers, URI or body).
  rule {
    action      = "deny(403)"
    priority    = 900
    description = "Log4j message lookups"

    match {
      expr {
        expression = "evaluatePreconfiguredExpr('cve-canary')"
      }
    }
  }

  rule {
    action      = "throttle"
    priority    = 2000
    description = "Rate limit per client IP"

    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }

    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"

      rate_limit_threshold {
        count        = var.rate_limit.count
        interval_sec = var.rate_limit.interval_sec
      }
    }
  }

  rule {
    action      = "allow"
    priority    = 2147483647
    description = "Everything else reaches the app, which authenticates every request"

    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}
