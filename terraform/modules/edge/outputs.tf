output "address" {
  description = "The load balancer's IP address: point the domains' DNS A records at it."
  value       = google_compute_global_address.edge.address
}

output "urls" {
  description = "Public function name -> its URL through the load balancer (the first domain)."
  value       = { for name in local.names : name => "https://${var.domains[0]}/${name}" }
}
