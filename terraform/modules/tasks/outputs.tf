output "queues" {
  description = "Queue name -> id."
  value       = { for name, q in google_cloud_tasks_queue.queue : name => q.id }
}
