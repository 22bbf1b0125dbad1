# Service accounts with least privilege. No primitive roles (editor, admin) anywhere.

# Runs the embedding function: calls the embeddings API, reads and writes the bucket, sends continuations.
resource "yandex_iam_service_account" "function" {
  name = "${var.name}-function"
}

# Invokes the function for the storage, queue and timer triggers.
resource "yandex_iam_service_account" "triggers" {
  name = "${var.name}-triggers"
}

# Lets API Gateway invoke the private function.
resource "yandex_iam_service_account" "gateway" {
  name = "${var.name}-gateway"
}

# Owns the static keys Terraform needs to manage Message Queue queues.
resource "yandex_iam_service_account" "queue_admin" {
  name = "${var.name}-queue-admin"
}

# Embeddings: the models are called in this folder; there is no narrower scope for this role.
resource "yandex_resourcemanager_folder_iam_member" "function_embeddings" {
  folder_id = var.folder_id
  role      = "ai.languageModels.user"
  member    = "serviceAccount:${yandex_iam_service_account.function.id}"
}

# Continuations of large documents and HTTP hand-overs: send to the jobs queue. Message Queue grants
# roles per folder only.
resource "yandex_resourcemanager_folder_iam_member" "function_queue_writer" {
  folder_id = var.folder_id
  role      = "ymq.writer"
  member    = "serviceAccount:${yandex_iam_service_account.function.id}"
}

# The bucket: read sources, write vectors, delete the outputs of deleted sources. storage.editor is
# the smallest role that can delete, and it is granted on this bucket only.
resource "yandex_storage_bucket_iam_binding" "function_bucket" {
  bucket  = yandex_storage_bucket.docs.bucket
  role    = "storage.editor"
  members = ["serviceAccount:${yandex_iam_service_account.function.id}"]
}

# Triggers: invoke this function only.
resource "yandex_function_iam_member" "triggers_invoke" {
  function_id = yandex_function.pipeline.id
  role        = "functions.functionInvoker"
  member      = "serviceAccount:${yandex_iam_service_account.triggers.id}"
}

# The queue trigger reads the jobs queue; folder-level, as Message Queue offers no per-queue grant.
resource "yandex_resourcemanager_folder_iam_member" "triggers_queue_reader" {
  folder_id = var.folder_id
  role      = "ymq.reader"
  member    = "serviceAccount:${yandex_iam_service_account.triggers.id}"
}

# The storage and timer triggers write events that failed every retry to their dead-letter queue.
resource "yandex_resourcemanager_folder_iam_member" "triggers_dlq_writer" {
  folder_id = var.folder_id
  role      = "ymq.writer"
  member    = "serviceAccount:${yandex_iam_service_account.triggers.id}"
}

# API Gateway: invoke this function only.
resource "yandex_function_iam_member" "gateway_invoke" {
  function_id = yandex_function.pipeline.id
  role        = "functions.functionInvoker"
  member      = "serviceAccount:${yandex_iam_service_account.gateway.id}"
}

# Terraform itself manages queues through the SQS API, which takes static keys only.
resource "yandex_resourcemanager_folder_iam_member" "queue_admin" {
  folder_id = var.folder_id
  role      = "ymq.admin"
  member    = "serviceAccount:${yandex_iam_service_account.queue_admin.id}"
}

resource "yandex_iam_service_account_static_access_key" "queue_admin" {
  service_account_id = yandex_iam_service_account.queue_admin.id
  description        = "Terraform's access to Message Queue; kept in state only, never in outputs."
}

# The function signs Message Queue requests (SigV4, as Yandex documents) with its own static key,
# passed through Lockbox (secrets.tf). The same key signs its Object Storage requests.
resource "yandex_iam_service_account_static_access_key" "function" {
  service_account_id = yandex_iam_service_account.function.id
  description        = "The function's SigV4 key for Message Queue and Object Storage."
}
