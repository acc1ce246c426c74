output "function_emails" {
  description = "Function name -> email of the service account it runs as."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "invoker_emails" {
  description = "push, scheduler, queue:<name> -> email of the invoker account."
  value       = { for key, sa in google_service_account.invoker : key => sa.email }
}
