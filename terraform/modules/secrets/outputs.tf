output "secrets" {
  description = "Secret name -> id."
  value       = { for name, s in google_secret_manager_secret.secret : name => s.id }
}
