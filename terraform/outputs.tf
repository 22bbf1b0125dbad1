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
