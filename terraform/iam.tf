# Service accounts with least privilege, one duty each. No primitive roles (editor, admin) anywhere,
# and no account here holds ymq.admin: queues are managed with keys the operator brings (versions.tf).

# Runs the embedding function: calls the embeddings API and reads and writes the bucket, with the IAM
# token the platform hands each invocation.
resource "yandex_iam_service_account" "function" {
  name = "${var.name}-function"
}

# Sends to the jobs queue, for the function (continuations, HTTP hand-overs) and for the storage and
# timer triggers (their dead-letter queue). Its one role is ymq.writer; it is the only account with a
# static key, because Message Queue's API takes SigV4 signatures.
resource "yandex_iam_service_account" "queue_sender" {
  name = "${var.name}-queue-sender"
}

# Invokes the function for the storage and timer triggers: no Message Queue role.
resource "yandex_iam_service_account" "triggers" {
  name = "${var.name}-triggers"
}

# Reads the jobs queue and invokes the function for the queue trigger.
resource "yandex_iam_service_account" "queue_trigger" {
  name = "${var.name}-queue-trigger"
}

# Lets API Gateway invoke the private function.
resource "yandex_iam_service_account" "gateway" {
  name = "${var.name}-gateway"
}

# Embeddings: the models are called in this folder; there is no narrower scope for this role.
resource "yandex_resourcemanager_folder_iam_member" "function_embeddings" {
  folder_id   = var.folder_id
  role        = "ai.languageModels.user"
  member      = "serviceAccount:${yandex_iam_service_account.function.id}"
  sleep_after = var.iam_propagation_s
}

# Vision OCR reads scans and images (OCR_ENABLED): ai.vision.user is its only role, granted per
# folder like the embeddings role.
resource "yandex_resourcemanager_folder_iam_member" "function_ocr" {
  count       = var.ocr ? 1 : 0
  folder_id   = var.folder_id
  role        = "ai.vision.user"
  member      = "serviceAccount:${yandex_iam_service_account.function.id}"
  sleep_after = var.iam_propagation_s
}

# Custom metrics (METRICS, monitoring.tf), written to Monitoring's /monitoring/v2/data/write with the
# function's IAM token. monitoring.editor is the narrowest Monitoring role that may write metrics:
# Monitoring has only viewer, editor and admin (en/monitoring/security/index.md), granted per folder
# or cloud. It also lets the account edit the folder's dashboards and alerts. Monium's narrower
# monium.metrics.writer only writes, but no Yandex document says the legacy /monitoring/v2 endpoint
# this code uses honours it, so it is not relied on here.
resource "yandex_resourcemanager_folder_iam_member" "function_metrics" {
  count       = var.metrics ? 1 : 0
  folder_id   = var.folder_id
  role        = "monitoring.editor"
  member      = "serviceAccount:${yandex_iam_service_account.function.id}"
  sleep_after = var.iam_propagation_s
}

# Message Queue grants roles per folder only.
resource "yandex_resourcemanager_folder_iam_member" "queue_sender_writer" {
  folder_id   = var.folder_id
  role        = "ymq.writer"
  member      = "serviceAccount:${yandex_iam_service_account.queue_sender.id}"
  sleep_after = var.iam_propagation_s
}

# The bucket: read sources, write vectors, delete the outputs of deleted sources. storage.editor is
# the smallest role that can delete, and it is granted on this bucket only.
resource "yandex_storage_bucket_iam_binding" "function_bucket" {
  bucket  = yandex_storage_bucket.docs.bucket
  role    = "storage.editor"
  members = ["serviceAccount:${yandex_iam_service_account.function.id}"]
}

# Storage and timer triggers: invoke the ingestion function only.
resource "yandex_function_iam_member" "triggers_invoke" {
  function_id = yandex_function.pipeline["ingest"].id
  role        = "functions.functionInvoker"
  member      = "serviceAccount:${yandex_iam_service_account.triggers.id}"
  sleep_after = var.iam_propagation_s
}

# The queue trigger: invoke the ingestion function only ...
resource "yandex_function_iam_member" "queue_trigger_invoke" {
  function_id = yandex_function.pipeline["ingest"].id
  role        = "functions.functionInvoker"
  member      = "serviceAccount:${yandex_iam_service_account.queue_trigger.id}"
  sleep_after = var.iam_propagation_s
}

# ... and read the jobs queue; folder-level, as Message Queue offers no per-queue grant.
resource "yandex_resourcemanager_folder_iam_member" "queue_trigger_reader" {
  folder_id   = var.folder_id
  role        = "ymq.reader"
  member      = "serviceAccount:${yandex_iam_service_account.queue_trigger.id}"
  sleep_after = var.iam_propagation_s
}

# API Gateway: invoke the HTTP function only; it cannot reach the ingestion function.
resource "yandex_function_iam_member" "gateway_invoke" {
  function_id = yandex_function.pipeline["http"].id
  role        = "functions.functionInvoker"
  member      = "serviceAccount:${yandex_iam_service_account.gateway.id}"
  sleep_after = var.iam_propagation_s
}

# The function signs Message Queue requests (SigV4, as Yandex documents) with this key. Its secret half
# goes straight to Lockbox (output_to_lockbox), so the state holds neither half.
resource "yandex_iam_service_account_static_access_key" "queue_sender" {
  service_account_id = yandex_iam_service_account.queue_sender.id
  description        = "SigV4 key for sending to the jobs queue; the account holds ymq.writer only."
  output_to_lockbox {
    secret_id            = yandex_lockbox_secret.queue_key.id
    entry_for_access_key = "AWS_ACCESS_KEY_ID"
    entry_for_secret_key = "AWS_SECRET_ACCESS_KEY"
  }
  depends_on = [yandex_resourcemanager_folder_iam_member.queue_sender_writer]

  # Destroying the key destroys the Lockbox version it wrote (lockbox_outputs.go,
  # DestroyOutputToLockboxVersion), which the functions read: a replaced key writes its new
  # version first, the functions move to it, and only then do the old key and version go.
  lifecycle {
    create_before_destroy = true
  }
}

# Storage grants have no sleep_after: wait here before anything that relies on them at creation.
resource "time_sleep" "bucket_grant" {
  create_duration = "${var.iam_propagation_s}s"
  depends_on      = [yandex_storage_bucket_iam_binding.function_bucket]
}
