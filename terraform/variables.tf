variable "cloud_id" {
  description = "Cloud ID (b1g...)."
  type        = string
}

variable "folder_id" {
  description = "Folder that holds every resource and whose embedding models the function calls."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]{20}$", var.folder_id))
    error_message = "folder_id is a 20-character Yandex Cloud ID such as b1gxxxxxxxxxxxxxxxxx."
  }
}

variable "zone" {
  description = "Default availability zone for the provider."
  type        = string
  default     = "ru-central1-a"
}

variable "name" {
  description = "Prefix for every resource name."
  type        = string
  default     = "embeddings"
  validation {
    # 39: the longest name made from it, "{name}-vector-db-ru-central1-a", then fits Yandex's 63.
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name: lower-case letters, digits and hyphens, starting with a letter, at most 39 characters."
  }
  # The name is also DEPLOYMENT_NAME, which the code checks against its own pattern (settings.py):
  # the rule above implies it today; this one keeps the code's contract if that rule is loosened.
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", var.name))
    error_message = "name is also DEPLOYMENT_NAME: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters."
  }
}

variable "bucket_name" {
  description = "Name of the bucket for sources and vectors (globally unique)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name: 3-63 lower-case letters, digits, dots and hyphens."
  }
}

variable "source_prefix" {
  description = "Objects under this prefix are embedded (SOURCE_PREFIX)."
  type        = string
  default     = "incoming/"
  validation {
    condition     = length(var.source_prefix) > 0 && endswith(var.source_prefix, "/")
    error_message = "source_prefix must be non-empty and end with '/': an empty one would make the trigger watch the whole bucket while the code falls back to incoming/."
  }
}

variable "extra_source_buckets" {
  description = "Further buckets that queue messages and HTTP submissions may name (EXTRA_SOURCE_BUCKETS). The module does not manage them: grant storage.editor on each to the function's service account (output function_service_account_id)."
  type        = list(string)
  default     = []
  # Cloud Functions caps a function's whole environment (names and values) at 4 KB.
  validation {
    condition     = length(join(",", var.extra_source_buckets)) <= 2048
    error_message = "extra_source_buckets must fit in 2,048 characters: a function's environment is capped at 4 KB in all."
  }
}

variable "output_prefix" {
  description = "Vectors, manifests and reports go under this prefix (OUTPUT_PREFIX); it must not contain source_prefix."
  type        = string
  default     = "embeddings/"
  validation {
    condition     = length(var.output_prefix) > 0 && endswith(var.output_prefix, "/")
    error_message = "output_prefix must be non-empty and end with '/'."
  }
  validation {
    condition     = !startswith(var.output_prefix, var.source_prefix) && !startswith(var.source_prefix, var.output_prefix)
    error_message = "output_prefix and source_prefix must not contain one another: outputs would be read back as sources, or sources taken for outputs."
  }
}

variable "embeddings_model" {
  description = "Document model: a short name (expanded to emb://<folder>/<name>/latest) or a full URI."
  type        = string
  default     = "text-search-doc"
}

variable "embeddings_query_model" {
  description = "Query model, same rules."
  type        = string
  default     = "text-search-query"
}

variable "embeddings_quota_rps" {
  description = "The folder's embeddings quota in requests per second (10 unless raised by support): EMBEDDINGS_RPS, which the instances split among themselves at run time."
  type        = number
  default     = 10
  validation {
    condition     = var.embeddings_quota_rps > 0 && var.embeddings_quota_rps <= 10000
    error_message = "embeddings_quota_rps must be above 0 and at most 10000 (EMBEDDINGS_RPS)."
  }
}

variable "instances_per_zone" {
  description = "Instances of the ingestion function (triggers) allowed per availability zone. However many run, they split the embeddings quota among themselves; more instances embed more documents at once, not faster than the quota."
  type        = number
  default     = 2
  validation {
    condition     = var.instances_per_zone >= 1 && var.instances_per_zone <= 100
    error_message = "instances_per_zone must be between 1 and 100."
  }
}

variable "http_instances_per_zone" {
  description = "Instances of the HTTP function (API Gateway) allowed per availability zone: its own capacity, so requests are not throttled while ingestion runs."
  type        = number
  default     = 2
  validation {
    condition     = var.http_instances_per_zone >= 1 && var.http_instances_per_zone <= 100
    error_message = "http_instances_per_zone must be between 1 and 100."
  }
  # Cloud Functions counts concurrent calls of all functions in a zone against one quota (10 by
  # default); scaling settings beyond it are refused, and calls beyond it are throttled.
  validation {
    condition     = var.instances_per_zone + var.http_instances_per_zone <= var.function_calls_per_zone_quota
    error_message = "instances_per_zone + http_instances_per_zone must not exceed function_calls_per_zone_quota (the cloud's quota of concurrent function calls per zone, 10 by default)."
  }
}

variable "function_calls_per_zone_quota" {
  description = "The cloud's Cloud Functions quota of concurrent calls per availability zone, for all functions (10 unless raised). Other functions in the cloud use it too."
  type        = number
  default     = 10
  validation {
    condition     = var.function_calls_per_zone_quota >= 2
    error_message = "function_calls_per_zone_quota must be at least 2: one call each for the ingestion and HTTP functions."
  }
}

variable "embeddings_concurrency" {
  description = "Embedding requests in flight per instance (EMBEDDINGS_CONCURRENCY)."
  type        = number
  default     = 32
  validation {
    condition     = var.embeddings_concurrency > 0 && var.embeddings_concurrency <= 512 && floor(var.embeddings_concurrency) == var.embeddings_concurrency
    error_message = "embeddings_concurrency must be a whole number from 1 to 512 (EMBEDDINGS_CONCURRENCY)."
  }
}

variable "chunk_max_tokens" {
  description = "Chunk size cap in estimated tokens (CHUNK_MAX_TOKENS, at most 2000)."
  type        = number
  default     = 500
  validation {
    condition     = var.chunk_max_tokens >= 16 && var.chunk_max_tokens <= 2000 && floor(var.chunk_max_tokens) == var.chunk_max_tokens
    error_message = "chunk_max_tokens must be a whole number between 16 and 2000 (CHUNK_MAX_TOKENS)."
  }
}

variable "function_memory_mb" {
  description = "Function memory in MB (128 MB steps)."
  type        = number
  default     = 256
  validation {
    condition     = var.function_memory_mb >= 128 && var.function_memory_mb <= 8192 && var.function_memory_mb % 128 == 0
    error_message = "function_memory_mb must be a multiple of 128 between 128 and 8192."
  }
}

variable "function_timeout_s" {
  description = "Function timeout in seconds (at most 600)."
  type        = number
  default     = 600
  validation {
    condition     = var.function_timeout_s >= 10 && var.function_timeout_s <= 600
    error_message = "function_timeout_s must be between 10 and 600."
  }
}

variable "http_function_memory_mb" {
  description = "HTTP function memory in MB (128 MB steps); replies are capped at 3.5 MB."
  type        = number
  default     = 256
  validation {
    condition     = var.http_function_memory_mb >= 128 && var.http_function_memory_mb <= 8192 && var.http_function_memory_mb % 128 == 0
    error_message = "http_function_memory_mb must be a multiple of 128 between 128 and 8192."
  }
}

variable "http_function_timeout_s" {
  description = "HTTP function timeout in seconds, and how long API Gateway waits for it (execution_timeout). /v1/embeddings paces a batch inside one call, one text per request: LangChain's default 1,000 texts take about 100 s at 10 requests a second. A batch that cannot end in time is refused at once (413, saying how many fit), so a shorter timeout only makes callers send smaller batches."
  type        = number
  default     = 300
  validation {
    condition     = var.http_function_timeout_s >= 10 && var.http_function_timeout_s <= 300
    error_message = "http_function_timeout_s must be between 10 and 300."
  }
}

variable "bucket_static_key_access" {
  description = "Let clients that sign with static keys (aws CLI, s3cmd, SDKs, pre-signed URLs) reach the bucket. Off: the function uses its IAM token, and uploads go through the console or `yc storage s3`."
  type        = bool
  default     = false
}

variable "storage_batch_size" {
  description = "Object Storage events per invocation."
  type        = number
  default     = 10
  validation {
    condition     = var.storage_batch_size >= 1 && var.storage_batch_size <= 10
    error_message = "storage_batch_size must be between 1 and 10 (the Object Storage trigger's limit)."
  }
}

variable "storage_batch_cutoff_s" {
  description = "Seconds the storage trigger waits to fill a batch."
  type        = number
  default     = 5
  validation {
    condition     = var.storage_batch_cutoff_s >= 1 && var.storage_batch_cutoff_s <= 60
    error_message = "storage_batch_cutoff_s must be between 1 and 60 seconds."
  }
}

variable "queue_batch_size" {
  description = "Queue messages per invocation."
  type        = number
  default     = 10
  validation {
    condition     = var.queue_batch_size >= 1 && var.queue_batch_size <= 1000
    error_message = "queue_batch_size must be between 1 and 1000."
  }
}

variable "queue_batch_cutoff_s" {
  description = "Seconds the queue trigger waits to fill a batch."
  type        = number
  default     = 5
  validation {
    condition     = var.queue_batch_cutoff_s >= 0 && var.queue_batch_cutoff_s <= 20
    error_message = "queue_batch_cutoff_s must be between 0 and 20 seconds."
  }
}

variable "max_receive_count" {
  description = "Deliveries of one queue message before the redrive policy moves it to the dead-letter queue."
  type        = number
  default     = 5
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "trigger_retry_attempts" {
  description = "Retries of a failed storage or timer invocation before its event goes to the trigger DLQ (1-5)."
  type        = number
  default     = 3
  validation {
    condition     = var.trigger_retry_attempts >= 1 && var.trigger_retry_attempts <= 5
    error_message = "trigger_retry_attempts must be between 1 and 5."
  }
}

variable "trigger_retry_interval_s" {
  description = "Seconds between those retries (10-60)."
  type        = number
  default     = 30
  validation {
    condition     = var.trigger_retry_interval_s >= 10 && var.trigger_retry_interval_s <= 60
    error_message = "trigger_retry_interval_s must be between 10 and 60."
  }
}

variable "reconcile_cron" {
  description = "Reconcile schedule, UTC: minutes hours day-of-month month day-of-week year, with '?' in one of the day fields."
  type        = string
  default     = "*/30 * ? * * *"
  validation {
    condition     = contains([5, 6], length(split(" ", var.reconcile_cron))) && length(regexall("\\?", var.reconcile_cron)) == 1
    error_message = "reconcile_cron needs 5 or 6 fields (minutes hours day-of-month month day-of-week [year]) with '?' in exactly one of the day fields."
  }
}

variable "reconcile_max_tokens" {
  description = "Token budget of one reconcile run (RECONCILE_MAX_TOKENS)."
  type        = number
  default     = 2000000
  validation {
    condition     = var.reconcile_max_tokens > 0 && floor(var.reconcile_max_tokens) == var.reconcile_max_tokens
    error_message = "reconcile_max_tokens must be a whole number above 0 (RECONCILE_MAX_TOKENS)."
  }
}

variable "reconcile_page_size" {
  description = "Source keys one reconcile page lists (with their outputs): an invocation's memory and time are bounded by it, not by the bucket."
  type        = number
  default     = 1000
  validation {
    condition     = var.reconcile_page_size >= 1 && var.reconcile_page_size <= 10000 && floor(var.reconcile_page_size) == var.reconcile_page_size
    error_message = "reconcile_page_size must be a whole number between 1 and 10000 (RECONCILE_PAGE_SIZE)."
  }
}

variable "http_api_keys" {
  description = "Application keys for the HTTP API (X-Api-Key), kept in Lockbox. Empty: the module generates one (output http_api_key); the API is never published without a key."
  type        = list(string)
  default     = []
  sensitive   = true
  validation {
    condition     = alltrue([for key in var.http_api_keys : length(key) >= 32 && !strcontains(key, ",") && trimspace(key) == key])
    error_message = "Each of http_api_keys needs at least 32 characters, no comma and no surrounding spaces."
  }
}

variable "http_rate_limit_rps" {
  description = "Requests per second API Gateway lets through, all paths together, before answering 429 (x-yc-apigateway's rateLimit: the per-path limit does not support the document status route's greedy path)."
  type        = number
  default     = 20
  validation {
    condition     = var.http_rate_limit_rps >= 1 && floor(var.http_rate_limit_rps) == var.http_rate_limit_rps
    error_message = "http_rate_limit_rps must be a whole number of at least 1."
  }
}

variable "ymq_access_key" {
  description = "Access key of an account of yours holding ymq.admin on the folder, used by Terraform only to manage the queues (TF_VAR_ymq_access_key). Provider configuration, so never written to state."
  type        = string
  default     = null
  sensitive   = true
}

variable "ymq_secret_key" {
  description = "Secret key paired with ymq_access_key (TF_VAR_ymq_secret_key)."
  type        = string
  default     = null
  sensitive   = true
}

variable "iam_propagation_s" {
  description = "Seconds to wait after each IAM grant before creating what relies on it (grants take time to propagate)."
  type        = number
  default     = 30
  validation {
    condition     = var.iam_propagation_s >= 0 && var.iam_propagation_s <= 300
    error_message = "iam_propagation_s must be between 0 and 300."
  }
}

variable "kms_encryption" {
  description = "Encrypt the bucket with a KMS key created here."
  type        = bool
  default     = false
}

variable "report_retention_days" {
  description = "Days to keep reconcile reports before the lifecycle rule removes them."
  type        = number
  default     = 30
}

variable "metrics" {
  description = "Write the pipeline's counters to Yandex Monitoring (METRICS) and build a dashboard of them (output metrics_dashboard_url). On, the functions' service account holds monitoring.editor on the folder; off, neither the role nor the dashboard exists and nothing is written."
  type        = bool
  default     = true
}

variable "ocr" {
  description = "Read scanned PDF pages and images (PNG, JPEG) with Yandex Vision OCR (OCR_ENABLED): the functions' service account holds ai.vision.user on the folder. Each page is billed once per version of a document. Off: such pages are skipped, and a document of nothing else is parked saying so."
  type        = bool
  default     = true
}

variable "ocr_quota_rps" {
  description = "The folder's Vision OCR quota in recognitions per second (5 unless raised; each PDF page counts as one): OCR_RPS, which the instances split among themselves at run time."
  type        = number
  default     = 5
  validation {
    condition     = var.ocr_quota_rps > 0 && var.ocr_quota_rps <= 1000
    error_message = "ocr_quota_rps must be above 0 and at most 1000 (OCR_RPS)."
  }
}

variable "ocr_model" {
  description = "OCR_MODEL: Vision OCR's model, page (the default), page-column-sort, markdown (keeps tables and headings), handwritten, table, math-markdown."
  type        = string
  default     = "page"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,49}$", var.ocr_model))
    error_message = "ocr_model must be a Vision OCR model name such as page or markdown (OCR_MODEL)."
  }
}

variable "data_logging" {
  description = "YC_DATA_LOGGING: let Yandex AI Studio log the texts sent to it (x-data-logging-enabled). Off by default: your documents are asked not to be kept in Yandex's request logs."
  type        = bool
  default     = false
}

variable "log_level" {
  description = "LOG_LEVEL of the function: DEBUG, INFO, WARN or ERROR."
  type        = string
  default     = "INFO"
  validation {
    condition     = contains(["DEBUG", "INFO", "WARN", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARN or ERROR."
  }
}

variable "vector_index" {
  description = "The vector index for POST /v1/search: \"none\" (no index: nothing is created and no VECTOR_DB_* is set), \"managed\" (a Managed Service for PostgreSQL cluster with pgvector, created here), or \"existing\" (a PostgreSQL of yours with pgvector enabled, named by vector_db_dsn). README, \"Vector index\"."
  type        = string
  default     = "none"
  validation {
    condition     = contains(["none", "managed", "existing"], var.vector_index)
    error_message = "vector_index must be \"none\", \"managed\" or \"existing\"."
  }
  # The checks of vector_db_dsn and vector_db_password live here, on booleans derived from them
  # (vector_index.tf): Terraform prints the values a failed rule refers to, sensitive or not, and a
  # DSN may hold a password.
  validation {
    condition     = var.vector_index != "existing" || local.vector_db_dsn_given
    error_message = "vector_index = \"existing\" needs vector_db_dsn."
  }
  validation {
    condition     = var.vector_index == "existing" || !local.vector_db_dsn_given
    error_message = "vector_db_dsn goes with vector_index = \"existing\" only: \"managed\" makes its own."
  }
  validation {
    condition     = var.vector_index != "existing" || local.vector_db_dsn_is_url
    error_message = "vector_db_dsn must be a postgresql:// URL."
  }
  validation {
    condition     = var.vector_index == "existing" || !local.vector_db_password_given
    error_message = "vector_db_password goes with vector_index = \"existing\" only: \"managed\" generates its own."
  }
  validation {
    condition     = var.vector_index != "existing" || local.vector_db_password_usable
    error_message = "vector_db_password must not be empty: leave it unset instead."
  }
}

variable "vector_db_table" {
  description = "The table of chunks and vectors in the vector index (VECTOR_DB_TABLE), made by the code on first use. Another name starts an empty table, which reconcile fills again from the bucket's records."
  type        = string
  default     = "embedding_chunks"
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,50}$", var.vector_db_table))
    error_message = "vector_db_table: lower-case letters, digits and '_', not starting with a digit, at most 51 characters (VECTOR_DB_TABLE)."
  }
}

variable "vector_db_dsn" {
  description = "\"existing\" only: postgresql://USER[:PASSWORD]@HOST:PORT/DB?sslmode=verify-full of a database with pgvector enabled (VECTOR_DB_DSN). Kept in Lockbox, never in the functions' plain environment. Checked by vector_index's rules."
  type        = string
  default     = null
  sensitive   = true
}

variable "vector_db_password" {
  description = "\"existing\" only, optional: the database password (VECTOR_DB_PASSWORD), which replaces any in vector_db_dsn. Kept in Lockbox. \"managed\" generates its own. Checked by vector_index's rules."
  type        = string
  default     = null
  sensitive   = true
}

variable "vector_db_ca_url" {
  description = "Where the functions fetch the CA certificates (PEM) that the database's TLS certificate must chain to (VECTOR_DB_CA_URL), once per instance over verified HTTPS. \"managed\": Yandex's Internal Root CA, whatever is set here; \"existing\": set it for a Managed PostgreSQL cluster, or leave it unset for a server whose certificate a public CA signed (or a DSN with sslrootcert)."
  type        = string
  default     = null
  validation {
    condition     = var.vector_db_ca_url == null || can(regex("^https://", var.vector_db_ca_url))
    error_message = "vector_db_ca_url must be an https:// URL: the CA decides whom the functions trust."
  }
}

variable "vector_db_network_id" {
  description = "A VPC network the functions join to reach the database. \"managed\": the cluster goes into it too (give vector_db_subnet_id); unset, a network with a subnet in every zone is created. \"existing\": set it when the database has no public address. The functions, containers and API gateways of one cloud can use one network between them: if some already use one, pass that one."
  type        = string
  default     = null
  validation {
    condition     = var.vector_db_network_id == null || can(regex("^[a-z0-9]{20}$", var.vector_db_network_id))
    error_message = "vector_db_network_id is a 20-character Yandex Cloud ID."
  }
}

variable "vector_db_subnet_id" {
  description = "\"managed\" with vector_db_network_id: the subnet of that network in var.zone, for the cluster's host. The network needs a subnet in every availability zone for the functions."
  type        = string
  default     = null
  validation {
    condition     = var.vector_db_subnet_id == null || can(regex("^[a-z0-9]{20}$", var.vector_db_subnet_id))
    error_message = "vector_db_subnet_id is a 20-character Yandex Cloud ID."
  }
  validation {
    condition     = var.vector_index != "managed" || (var.vector_db_network_id == null) == (var.vector_db_subnet_id == null)
    error_message = "With vector_index = \"managed\", give vector_db_network_id and vector_db_subnet_id together, or neither (a network is created)."
  }
}

variable "vector_db_subnet_cidrs" {
  description = "\"managed\" without vector_db_network_id: the range of the subnet created in each availability zone. Functions in a network need a subnet in every zone; the cluster's host takes the one in var.zone."
  type        = map(string)
  default = {
    "ru-central1-a" = "10.61.1.0/24"
    "ru-central1-b" = "10.61.2.0/24"
    "ru-central1-d" = "10.61.3.0/24"
  }
  validation {
    condition     = alltrue([for cidr in values(var.vector_db_subnet_cidrs) : can(cidrnetmask(cidr))])
    error_message = "vector_db_subnet_cidrs must map zones to IPv4 CIDR blocks such as 10.61.1.0/24."
  }
  validation {
    condition     = var.vector_index != "managed" || var.vector_db_network_id != null || contains(keys(var.vector_db_subnet_cidrs), var.zone)
    error_message = "vector_db_subnet_cidrs must have a subnet in var.zone, where the cluster's host goes."
  }
  # Functions in a user network take their addresses from 198.19.0.0/16.
  validation {
    condition     = alltrue([for cidr in values(var.vector_db_subnet_cidrs) : !startswith(cidr, "198.19.")])
    error_message = "vector_db_subnet_cidrs must stay clear of 198.19.0.0/16, the functions' own range in the network."
  }
}

variable "vector_db_allowed_cidrs" {
  description = "\"managed\": further sources in the cluster's network (an admin VM, say) allowed to connect on port 6432. The functions are always allowed; the host has no public address."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for cidr in var.vector_db_allowed_cidrs : can(cidrnetmask(cidr))])
    error_message = "vector_db_allowed_cidrs must be IPv4 CIDR blocks."
  }
}

variable "vector_db_preset" {
  description = "\"managed\": the host class. b2.medium (2 vCPU at 50%, 4 GB) is the cheapest class Managed PostgreSQL offers (README, \"Vector index\"); s2.micro (2 full vCPU, 8 GB) for heavier search traffic."
  type        = string
  default     = "b2.medium"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]*[.-][a-z0-9.-]+$", var.vector_db_preset))
    error_message = "vector_db_preset is a host class such as b2.medium, s2.micro or s3-c2-m8."
  }
}

variable "vector_db_postgresql_version" {
  description = "\"managed\": the PostgreSQL major version. 16 and 17 carry pgvector 0.8.0; HNSW indexes need 0.5.0 or later, which 14 and 15 lack."
  type        = string
  default     = "17"
  validation {
    condition     = contains(["16", "17"], var.vector_db_postgresql_version)
    error_message = "vector_db_postgresql_version must be \"16\" or \"17\": older versions carry a pgvector without HNSW."
  }
}

variable "vector_db_disk_size_gb" {
  description = "\"managed\": network SSD storage of the host, in GB. Backups are free up to this size."
  type        = number
  default     = 10
  validation {
    condition     = var.vector_db_disk_size_gb >= 10 && floor(var.vector_db_disk_size_gb) == var.vector_db_disk_size_gb
    error_message = "vector_db_disk_size_gb must be a whole number of at least 10."
  }
}

variable "vector_db_extension" {
  description = "\"managed\": the name the pgvector extension is enabled under. Yandex Cloud's extension list names it pgvector; upstream calls it vector. Switch only if apply says the name is unknown (README, \"Vector index\")."
  type        = string
  default     = "pgvector"
  validation {
    condition     = contains(["pgvector", "vector"], var.vector_db_extension)
    error_message = "vector_db_extension must be \"pgvector\" or \"vector\"."
  }
}

variable "vector_db_locale" {
  description = "\"managed\": lc_collate and lc_ctype of a database created from now on (Managed PostgreSQL's default is C, under which lower() and Russian full-text search leave Cyrillic capitals as they are; the pipeline folds case itself, so search is correct either way). Fixed at creation: an existing database keeps its locale (ignore_changes)."
  type        = string
  default     = "ru_RU.UTF-8"
  validation {
    # The API's own pattern (DatabaseSpec.lc_collate): C, or letters and underscores then .UTF-8.
    condition     = can(regex("^(C|[a-zA-Z_]+\\.UTF-8)$", var.vector_db_locale))
    error_message = "vector_db_locale must be C or a UTF-8 locale such as ru_RU.UTF-8 or en_US.UTF-8."
  }
}

variable "vector_db_deletion_protection" {
  description = "\"managed\": refuse to delete the cluster (destroy, or a switch to \"none\") until this is set to false and applied. The index can be rebuilt from the bucket, but that re-reads every record."
  type        = bool
  default     = true
}
