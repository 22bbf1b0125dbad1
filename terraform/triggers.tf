# Uploads and deletes under SOURCE_PREFIX (never empty, variables.tf). The function ignores keys under
# OUTPUT_PREFIX anyway, so its own outputs cannot loop.
resource "yandex_function_trigger" "uploads" {
  name        = "${var.name}-uploads"
  description = "ObjectCreate/ObjectDelete under ${var.source_prefix} → embed or remove vectors."
  object_storage {
    bucket_id    = yandex_storage_bucket.docs.id
    prefix       = var.source_prefix
    create       = true
    delete       = true
    update       = false # ObjectUpdate is an ACL change, not new content
    batch_size   = tostring(var.storage_batch_size)
    batch_cutoff = tostring(var.storage_batch_cutoff_s)
  }
  function {
    id                 = yandex_function.pipeline["ingest"].id
    service_account_id = yandex_iam_service_account.triggers.id
    retry_attempts     = tostring(var.trigger_retry_attempts)
    retry_interval     = tostring(var.trigger_retry_interval_s)
  }
  # The dead-letter queue is written by the queue sender (ymq.writer only), so this trigger's own
  # account needs no Message Queue role.
  dlq {
    queue_id           = yandex_message_queue.trigger_dlq.arn
    service_account_id = yandex_iam_service_account.queue_sender.id
  }
  depends_on = [yandex_function_iam_member.triggers_invoke, yandex_resourcemanager_folder_iam_member.queue_sender_writer]
}

# Jobs: a failed batch comes back after the visibility timeout; the queue's redrive policy is the DLQ.
resource "yandex_function_trigger" "jobs" {
  name        = "${var.name}-jobs"
  description = "Message Queue jobs → embed object references, inline records, continuations."
  message_queue {
    queue_id           = yandex_message_queue.jobs.arn
    service_account_id = yandex_iam_service_account.queue_trigger.id
    batch_size         = tostring(var.queue_batch_size)
    batch_cutoff       = tostring(var.queue_batch_cutoff_s)
  }
  function {
    id                 = yandex_function.pipeline["ingest"].id
    service_account_id = yandex_iam_service_account.queue_trigger.id
  }
  depends_on = [yandex_function_iam_member.queue_trigger_invoke, yandex_resourcemanager_folder_iam_member.queue_trigger_reader]
}

# Reconcile on a schedule: embed what is missing or stale, remove orphans, retry parked failures.
resource "yandex_function_trigger" "reconcile" {
  name        = "${var.name}-reconcile"
  description = "Timer → reconcile the bucket."
  timer {
    cron_expression = var.reconcile_cron
    payload         = jsonencode({ action = "reconcile" })
  }
  function {
    id                 = yandex_function.pipeline["ingest"].id
    service_account_id = yandex_iam_service_account.triggers.id
    retry_attempts     = "1"
    retry_interval     = "60"
  }
  # The dead-letter queue is written by the queue sender (ymq.writer only), so this trigger's own
  # account needs no Message Queue role.
  dlq {
    queue_id           = yandex_message_queue.trigger_dlq.arn
    service_account_id = yandex_iam_service_account.queue_sender.id
  }
  depends_on = [yandex_function_iam_member.triggers_invoke, yandex_resourcemanager_folder_iam_member.queue_sender_writer]
}
