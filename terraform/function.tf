locals {
  # The quota is a rate shared by every instance in every zone. The scaling policy caps instances at
  # instances_per_zone in each of the region's three zones, so at most 3 × instances_per_zone run at
  # once; each paces itself at quota / (3 × instances_per_zone) requests per second. Then
  #   instances × EMBEDDINGS_RPS ≤ 3 × instances_per_zone × quota / (3 × instances_per_zone) = quota.
  # With the defaults: 10 rps / (3 × 1) = 3.33 rps per instance, 3 instances, 10 rps in all. An
  # instance that still meets 429s (say, another app shares the folder) halves its pace (AIMD).
  zones                       = 3
  embeddings_rps_per_instance = var.embeddings_quota_rps / (local.zones * var.instances_per_zone)

  # Every setting the code reads (README, "Configuration"); secrets come from Lockbox below.
  environment = {
    YC_FOLDER_ID           = var.folder_id
    EMBEDDINGS_MODEL       = var.embeddings_model
    EMBEDDINGS_QUERY_MODEL = var.embeddings_query_model
    EMBEDDINGS_RPS         = format("%.3f", local.embeddings_rps_per_instance)
    EMBEDDINGS_CONCURRENCY = tostring(var.embeddings_concurrency)
    SOURCE_PREFIX          = var.source_prefix
    OUTPUT_PREFIX          = var.output_prefix
    SOURCE_BUCKET          = yandex_storage_bucket.docs.bucket
    EXTRA_SOURCE_BUCKETS   = join(",", var.extra_source_buckets)
    QUEUE_URL              = yandex_message_queue.jobs.id
    CHUNK_MAX_TOKENS       = tostring(var.chunk_max_tokens)
    RECONCILE_MAX_TOKENS   = tostring(var.reconcile_max_tokens)
    LOG_LEVEL              = var.log_level
    # The static key in Lockbox is the queue sender's (ymq.writer only): storage goes by IAM token.
    S3_USE_ACCESS_KEYS = "false"
  }

  # Secret settings: the Lockbox secret and version each comes from (secrets.tf). HTTP_API_KEYS is
  # always set, so the function never trusts every caller.
  secret_environment = {
    "AWS_ACCESS_KEY_ID" = {
      secret  = yandex_lockbox_secret.queue_key.id
      version = yandex_iam_service_account_static_access_key.queue_sender.output_to_lockbox_version_id
    }
    "AWS_SECRET_ACCESS_KEY" = {
      secret  = yandex_lockbox_secret.queue_key.id
      version = yandex_iam_service_account_static_access_key.queue_sender.output_to_lockbox_version_id
    }
    "HTTP_API_KEYS" = {
      secret  = yandex_lockbox_secret.api_keys.id
      version = yandex_lockbox_secret_version_hashed.api_keys.id
    }
  }

  # The function's LOG_LEVEL names map one to one onto Cloud Logging levels, so DEBUG lines are kept
  # when asked for and nothing below the setting is paid for.
  log_min_level = var.log_level
}

# The code, zipped from the repository root; the runtime installs requirements.txt itself.
data "archive_file" "function" {
  type        = "zip"
  source_dir  = "${path.module}/.."
  output_path = "${path.module}/.build/function.zip"
  excludes = [
    ".git",
    ".github",
    ".ci",
    ".venv",
    ".local",
    ".build",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "tests",
    "terraform",
    "bench",
    "devstack",
    "Makefile",
    "requirements-dev.txt",
    "requirements-local.txt",
    "*.egg-info",
    # Caches anywhere in the tree (tests and editors leave them in every package): with them the
    # hash, and so the function's version, would differ from machine to machine.
    "**/__pycache__",
    "**/__pycache__/**",
    "**/*.pyc",
    "**/.DS_Store",
  ]
}

resource "yandex_logging_group" "function" {
  name      = "${var.name}-function"
  folder_id = var.folder_id
}

resource "yandex_function" "pipeline" {
  name               = "${var.name}-pipeline"
  description        = "Embedding pipeline: storage, queue, timer and HTTP triggers."
  runtime            = "python312"
  entrypoint         = "index.handler"
  memory             = var.function_memory_mb
  execution_timeout  = tostring(var.function_timeout_s)
  service_account_id = yandex_iam_service_account.function.id
  # A code change changes the hash, and so creates a new version.
  user_hash = data.archive_file.function.output_sha256
  # Unset rather than empty (EXTRA_SOURCE_BUCKETS without extra buckets): the code's defaults apply.
  environment = { for name, value in local.environment : name => value if value != "" }

  content {
    zip_filename = data.archive_file.function.output_path
  }

  dynamic "secrets" {
    for_each = local.secret_environment
    content {
      id                   = secrets.value.secret
      version_id           = secrets.value.version
      key                  = secrets.key
      environment_variable = secrets.key
    }
  }

  log_options {
    log_group_id = yandex_logging_group.function.id
    min_level    = local.log_min_level
  }

  # The grants carry sleep_after (the bucket's a time_sleep): the function is created once they are
  # in effect, not merely accepted.
  depends_on = [
    yandex_resourcemanager_folder_iam_member.function_embeddings,
    time_sleep.bucket_grant,
    yandex_lockbox_secret_iam_member.function_reads_api_keys,
    yandex_lockbox_secret_iam_member.function_reads_queue_key,
  ]
}

resource "yandex_function_scaling_policy" "pipeline" {
  function_id = yandex_function.pipeline.id
  policy {
    tag                  = "$latest"
    zone_instances_limit = var.instances_per_zone
    zone_requests_limit  = var.instances_per_zone # Python serves one request per instance
  }
}
