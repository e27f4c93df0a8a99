# What ops need after an apply. No secret is ever an output.

output "webhook_url" {
  description = "Paste into Twilio (WhatsApp sender > 'A message comes in', HTTP POST). Signatures are validated against exactly this URL."
  value       = local.webhook_public_url
}

output "user_api_url" {
  description = "Base URL of the internal user API for the downstream services (they call it with an identity token for this audience)."
  value       = local.function["user_api"].service_config[0].uri
}

output "function_urls" {
  description = "The run.app URL of every function (the audience of its OIDC tokens)."
  value       = { for k, f in local.function : k => f.service_config[0].uri }
}

output "function_service_accounts" {
  description = "The service account each function runs as (also its Cloud SQL IAM user)."
  value       = { for k, sa in google_service_account.function : k => sa.email }
}

output "scheduler_jobs" {
  description = "Cloud Scheduler jobs (`whatsapp-handler jobs list`, `whatsapp-handler jobs run NAME`)."
  value       = { for k, j in google_cloud_scheduler_job.this : k => j.id }
}

output "migration_job" {
  description = "Run migrations by hand: gcloud run jobs execute <this> --region <region> --wait [--args=status]"
  value       = google_cloud_run_v2_job.migrate.name
}

output "cloud_sql_instance" {
  description = "CLOUD_SQL_INSTANCE (project:region:instance)."
  value       = google_sql_database_instance.main.connection_name
}

output "topics" {
  description = "Pub/Sub topics: events out (PUBSUB_TOPIC), notification requests in (NOTIFY_TOPIC), and their dead-letter topics."
  value = {
    events                    = google_pubsub_topic.events.name
    events_dead_letter        = google_pubsub_topic.events_dead_letter.name
    notifications             = google_pubsub_topic.notifications.name
    notifications_dead_letter = google_pubsub_topic.notifications_dead_letter.name
  }
}

output "connections_budget" {
  description = "Cloud SQL connections the functions may open at most (sum of max_instances x pool_size) against max_connections."
  value = {
    functions       = local.function_connections
    reserved        = var.db_reserved_connections
    max_connections = var.db_max_connections
  }
}
