# Queues are managed with the operator's ymq.admin keys from the provider configuration (versions.tf).

# Jobs: object references and inline records to embed, and continuations of large documents.
resource "yandex_message_queue" "jobs" {
  name = "${var.name}-jobs"
  # Longer than the function's timeout, so a message being processed is not handed out twice.
  visibility_timeout_seconds = var.function_timeout_s + 60
  message_retention_seconds  = 345600
  redrive_policy = jsonencode({
    deadLetterTargetArn = yandex_message_queue.jobs_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# Messages that failed max_receive_count times: inspect and re-send by hand.
resource "yandex_message_queue" "jobs_dlq" {
  name                      = "${var.name}-jobs-dlq"
  message_retention_seconds = 1209600
}

# Storage and timer events whose invocations failed every retry.
resource "yandex_message_queue" "trigger_dlq" {
  name                      = "${var.name}-trigger-dlq"
  message_retention_seconds = 1209600
}
