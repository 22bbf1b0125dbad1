output "function_id" {
  description = "The ingestion function (storage, queue and timer triggers); call it directly for a dry-run reconcile."
  value       = yandex_function.pipeline["ingest"].id
}

output "http_function_id" {
  description = "The HTTP API's function, behind API Gateway."
  value       = yandex_function.pipeline["http"].id
}

output "api_gateway_url" {
  description = "Base URL of the HTTP API (append /v1/embeddings)."
  value       = "https://${yandex_api_gateway.http.domain}"
}

output "bucket" {
  description = "Upload documents under source_prefix here; vectors appear under output_prefix."
  value       = yandex_storage_bucket.docs.bucket
}

output "jobs_queue_url" {
  description = "Send {\"key\": ...} or {\"id\": ..., \"text\": ...} messages here."
  value       = yandex_message_queue.jobs.id
}

output "jobs_dlq_url" {
  description = "Messages that failed max_receive_count deliveries."
  value       = yandex_message_queue.jobs_dlq.id
}

output "trigger_dlq_url" {
  description = "Storage and timer events that failed every retry."
  value       = yandex_message_queue.trigger_dlq.id
}

output "log_group_id" {
  description = "The function's logs."
  value       = yandex_logging_group.function.id
}

output "function_service_account_id" {
  description = "The function's service account: grant it storage.editor on any bucket in extra_source_buckets."
  value       = yandex_iam_service_account.function.id
}

output "http_api_key" {
  description = "The first HTTP API key (X-Api-Key): the generated one unless http_api_keys was given. Read it with `terraform output -raw http_api_key`."
  value       = local.http_api_keys[0]
  sensitive   = true
}

output "http_api_keys_secret_id" {
  description = "Lockbox secret holding HTTP_API_KEYS (yc lockbox payload get <id>)."
  value       = yandex_lockbox_secret.api_keys.id
}

output "queue_key_secret_id" {
  description = "Lockbox secret holding the queue sender's static key (ymq.writer only), for sending jobs by hand."
  value       = yandex_lockbox_secret.queue_key.id
}

output "vector_db_cluster_id" {
  description = "The vector index's Managed PostgreSQL cluster (vector_index = \"managed\"), else null."
  value       = local.vector_db_cluster_id
}

output "vector_db_host" {
  description = "Host of the managed vector index: the special FQDN that follows the current master. Port 6432, TLS with Yandex's CA; reachable only from inside its network (README, \"Vector index\")."
  value       = local.vector_db_host
}

output "vector_db_connection" {
  description = "How the functions connect to the managed vector index, without the password: psql \"$(terraform output -raw vector_db_connection)\" from a host allowed in vector_db_allowed_cidrs, with the password from vector_db_secret_id."
  value       = local.vector_db_managed_dsn
}

output "vector_db_secret_id" {
  description = "Lockbox secret holding VECTOR_DB_DSN and VECTOR_DB_PASSWORD (yc lockbox payload get <id>), or null without a vector index."
  value       = one(yandex_lockbox_secret.vector_db[*].id)
}

output "vector_db_network_id" {
  description = "The network the functions joined to reach the vector index, or null when they joined none."
  value       = local.functions_join_network ? local.vector_db_network_id : null
}

output "metrics_dashboard_id" {
  description = "The Monitoring dashboard of the pipeline's counters (metrics = true), else null."
  value       = one(yandex_monitoring_dashboard.pipeline[*].dashboard_id)
}

output "metrics_dashboard_url" {
  description = "Where to open that dashboard in Monitoring, or null (the address's form is the console's, not documented by Yandex: README, \"Watch it work\")."
  value       = one([for dashboard in yandex_monitoring_dashboard.pipeline : "https://monitoring.yandex.cloud/folders/${var.folder_id}/dashboards/${dashboard.dashboard_id}"])
}
