locals {
  # Two functions from one archive and one service account: the triggers' ingestion, and the HTTP
  # API. Each has its own instances and scaling policy, so a long ingestion never leaves the API
  # without an instance (Cloud Functions scales versions, not tags, so a second tag on one function
  # would share the instances). Both stay within the cloud's concurrent-calls quota (variables.tf).
  functions = {
    ingest = {
      description        = "Embedding pipeline: storage, queue and timer triggers."
      memory             = var.function_memory_mb
      timeout_s          = var.function_timeout_s
      instances_per_zone = var.instances_per_zone
    }
    http = {
      description        = "Embedding pipeline: the HTTP API behind API Gateway."
      memory             = var.http_function_memory_mb
      timeout_s          = var.http_function_timeout_s
      instances_per_zone = var.http_instances_per_zone
    }
  }

  # Every setting the code reads (README, "Configuration"); secrets come from Lockbox below.
  environment = {
    YC_FOLDER_ID           = var.folder_id
    EMBEDDINGS_MODEL       = var.embeddings_model
    EMBEDDINGS_QUERY_MODEL = var.embeddings_query_model
    # The folder's quota, whole: instances that embed at once split it among themselves at run
    # time (they meet under OUTPUT_PREFIX/_quota/ in the bucket), however many the scaling policy
    # starts, and find out from 429s when something else in the folder uses it too.
    EMBEDDINGS_RPS         = tostring(var.embeddings_quota_rps)
    EMBEDDINGS_CONCURRENCY = tostring(var.embeddings_concurrency)
    SOURCE_PREFIX          = var.source_prefix
    OUTPUT_PREFIX          = var.output_prefix
    SOURCE_BUCKET          = yandex_storage_bucket.docs.bucket
    EXTRA_SOURCE_BUCKETS   = join(",", var.extra_source_buckets)
    QUEUE_URL              = yandex_message_queue.jobs.id
    CHUNK_MAX_TOKENS       = tostring(var.chunk_max_tokens)
    RECONCILE_MAX_TOKENS   = tostring(var.reconcile_max_tokens)
    # A sweep walks the bucket a page at a time and sends what it finds to QUEUE_URL: the queue
    # trigger's instances embed it at the shared quota while the next page is listed.
    RECONCILE_PAGE_SIZE = tostring(var.reconcile_page_size)
    LOG_LEVEL           = var.log_level
    # Scans and images read by Yandex Vision OCR; off, their pages are skipped (a scan alone is
    # parked) and the function holds no Vision role.
    OCR_ENABLED = tostring(var.ocr)
    OCR_RPS     = tostring(var.ocr_quota_rps)
    OCR_MODEL   = var.ocr_model
    # Counters for the dashboard (monitoring.tf); off, the function writes none and holds no role.
    METRICS         = tostring(var.metrics)
    YC_DATA_LOGGING = tostring(var.data_logging)
    # Both functions write one output area as one deployment: manifests and output objects name it.
    DEPLOYMENT_NAME = var.name
    # The static key in Lockbox is the queue sender's (ymq.writer only): storage goes by IAM token.
    S3_USE_ACCESS_KEYS = "false"
    # Not secret: where the database's CA is published (vector_index.tf). Empty: unset.
    VECTOR_DB_CA_URL = local.vector_db_ca_url != null ? local.vector_db_ca_url : ""
    # Only with an index: without one the code's default stands, unused.
    VECTOR_DB_TABLE = local.vector_index.settings ? var.vector_db_table : ""
  }

  # Secret settings: the Lockbox secret and version each comes from (secrets.tf). HTTP_API_KEYS is
  # always set, so the function never trusts every caller. The vector index's join them in the
  # secrets block below when there is one (vector_index.tf).
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

# The code, zipped from what the function imports and nothing else: an include list, so a file
# added at the repository root (a script, a local .env, a saved plan) never reaches the function
# unless it is named here. Only Python sources of the two packages: caches (__pycache__, *.pyc) are
# never matched, whatever the machine left behind.
locals {
  function_root = "${path.module}/.."
  function_files = sort(concat(
    ["index.py", "requirements.txt"],
    tolist(fileset(local.function_root, "embedding_pipeline/**/*.py")),
    tolist(fileset(local.function_root, "handlers/**/*.py")),
  ))
}

# Each file goes in as a `source` block: the archive provider writes those entries in name order with
# neither a time nor a mode (archive 2.5, ArchiveMultiple in zip_archiver.go), so the hash, and so the
# function's version, is the same on every machine whatever its umask or checkout's file modes.
# output_file_mode is not set because it only applies to source_dir and source_file entries.
data "archive_file" "function" {
  type        = "zip"
  output_path = "${path.module}/.build/function.zip"

  dynamic "source" {
    for_each = local.function_files
    content {
      filename = source.value
      content  = file("${local.function_root}/${source.value}")
    }
  }
}

resource "yandex_logging_group" "function" {
  name      = "${var.name}-function"
  folder_id = var.folder_id
}

resource "yandex_function" "pipeline" {
  for_each           = local.functions
  name               = "${var.name}-${each.key}"
  description        = each.value.description
  runtime            = "python312"
  entrypoint         = "index.handler"
  memory             = each.value.memory
  execution_timeout  = tostring(each.value.timeout_s)
  service_account_id = yandex_iam_service_account.function.id
  # A code change changes the hash, and so creates a new version.
  user_hash = data.archive_file.function.output_sha256
  # Unset rather than empty (EXTRA_SOURCE_BUCKETS without extra buckets): the code's defaults apply.
  environment = { for name, value in local.environment : name => value if value != "" }

  content {
    zip_filename = data.archive_file.function.output_path
  }

  dynamic "secrets" {
    for_each = merge(local.secret_environment, local.vector_db_secret_environment)
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

  # Only to reach a vector index with no public address. Functions in a network keep their internet
  # access, so the embeddings API and Object Storage stay reachable (README, "Vector index").
  dynamic "connectivity" {
    for_each = local.functions_join_network ? [local.vector_db_network_id] : []
    content {
      network_id = connectivity.value
    }
  }

  # The grants carry sleep_after (the bucket's a time_sleep): the function is created once they are
  # in effect, not merely accepted.
  depends_on = [
    yandex_resourcemanager_folder_iam_member.function_embeddings,
    time_sleep.bucket_grant,
    yandex_lockbox_secret_iam_member.function_reads_api_keys,
    yandex_lockbox_secret_iam_member.function_reads_queue_key,
    yandex_lockbox_secret_iam_member.function_reads_vector_db,
    yandex_resourcemanager_folder_iam_member.function_metrics,
    yandex_resourcemanager_folder_iam_member.function_ocr,
    # A network needs a subnet in every zone before functions join it.
    yandex_vpc_subnet.vector_db,
  ]

  lifecycle {
    # The provider turns a failed version (a dependency that does not build, a bad setting) into a
    # warning, saves the configuration anyway, and the next apply changes nothing
    # (resource_yandex_function.go, resourceYandexFunctionDiagsFromCreateVersionError). `version` is
    # read from the $latest version, so it is empty only when the function has never had one: this
    # catches a failed first version, at apply and at every later plan, until the function is
    # replaced (terraform/README.md, "When a function has no version"). It does not catch a failed
    # later version: `version` then keeps the previous one's id, and the function keeps running the
    # old code; only the apply's warning tells.
    postcondition {
      condition     = self.version != null && self.version != ""
      error_message = "Function ${self.name} has no version: its first version failed to build (see the warning above). Fix the cause, then run: terraform apply -replace='yandex_function.pipeline[\"${each.key}\"]'"
    }
  }
}

# One function became two (ingestion and HTTP): the existing one is the ingestion function.
moved {
  from = yandex_function.pipeline
  to   = yandex_function.pipeline["ingest"]
}

resource "yandex_function_scaling_policy" "pipeline" {
  for_each    = local.functions
  function_id = yandex_function.pipeline[each.key].id
  policy {
    tag                  = "$latest"
    zone_instances_limit = each.value.instances_per_zone
    # Python serves one call per instance. Calls beyond the instances get 429 at once rather than
    # wait in line while holding the cloud's concurrent-calls quota; triggers retry them.
    zone_requests_limit = each.value.instances_per_zone
  }
}

moved {
  from = yandex_function_scaling_policy.pipeline
  to   = yandex_function_scaling_policy.pipeline["ingest"]
}
