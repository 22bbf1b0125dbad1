"""Configuration: one typed object read from the environment once per instance.

Every field maps to the environment variable of the same name in upper case; the README's settings
table lists them all. A bad value fails at cold start with the variable's name in the message.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from embedding_pipeline.errors import ConfigurationError

YANDEX_MODEL_LIMIT_TOKENS = 2000
_MODEL_SHORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

PositiveInt = Annotated[int, Field(gt=0)]


def _http_scheme(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _unset_if_empty(value: object) -> object:
    """An empty variable is an unset one (Terraform writes optional settings as empty strings)."""
    return None if value == "" else value


def _postgres_url(value: SecretStr) -> SecretStr:
    # The message never repeats the value: it may hold a password.
    if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL")
    return value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


Endpoint = Annotated[str, AfterValidator(_http_scheme), AfterValidator(lambda value: value.rstrip("/"))]
OptionalUrl = Annotated[Annotated[str, AfterValidator(_http_scheme)] | None, BeforeValidator(_unset_if_empty)]
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_unset_if_empty)]
PostgresDsn = Annotated[
    Annotated[SecretStr, AfterValidator(_postgres_url)] | None, BeforeValidator(_unset_if_empty)
]


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # Embeddings API
    yc_folder_id: str | None = None
    embeddings_url: Endpoint = "https://ai.api.cloud.yandex.net/v1"
    embeddings_model: str = "text-search-doc"
    embeddings_query_model: str = "text-search-query"
    embeddings_dimensions: PositiveInt = 256
    # The folder's quota, shared by every instance (clients/pacing.py): where the pace starts.
    embeddings_rps: Annotated[float, Field(gt=0, le=10_000)] = 10.0
    # Instances embedding in bulk find each other in the bucket to split the quota (quota_share.py).
    quota_sharing: bool = True
    embeddings_concurrency: Annotated[int, Field(gt=0, le=512)] = 32
    embeddings_max_attempts: Annotated[int, Field(gt=0, le=20)] = 8
    embeddings_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    # False: every request to AI Studio asks it not to log the request's data (the documents are
    # the customer's); true lets Yandex keep its request logs.
    yc_data_logging: bool = False

    # Credentials
    yc_iam_token: SecretStr | None = None
    yc_api_key: SecretStr | None = None
    yc_metadata_url: Endpoint = (
        "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token"
    )
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None

    # Object Storage
    s3_endpoint: Endpoint = "https://storage.yandexcloud.net"
    s3_region: str = "ru-central1"
    # False: Object Storage requests carry the IAM token even when AWS_* keys are set, because those
    # keys belong to an account that may only send to Message Queue (terraform/iam.tf).
    s3_use_access_keys: bool = True
    source_prefix: str = "incoming/"
    output_prefix: Annotated[str, Field(min_length=1)] = "embeddings/"
    output_bucket: str | None = None
    source_bucket: str | None = None  # for reconcile, queue messages and HTTP submissions without a bucket
    # Comma-separated: further buckets a queue message or HTTP submission may name in "bucket".
    extra_source_buckets: str | None = None

    # Message Queue: continuations of large documents and HTTP hand-overs go here when set
    queue_url: str | None = None
    ymq_endpoint: Endpoint = "https://message-queue.api.cloud.yandex.net"
    ymq_region: str = "ru-central1"
    max_continuations: Annotated[int, Field(ge=0)] = 1000

    # HTTP API
    http_api_keys: SecretStr | None = None  # comma-separated; empty means the function must stay private
    # OpenAI's own cap; the reply and the time left may hold fewer (handlers/http/batch_limits.py).
    http_max_inputs: Annotated[int, Field(gt=0, le=2048)] = 2048
    http_max_body_bytes: Annotated[int, Field(gt=0, le=3_500_000)] = 1_048_576

    # Vector index (optional): PostgreSQL with pgvector, derived from the records (vector_index/)
    vector_db_dsn: PostgresDsn = None  # postgresql://user[:password]@host:port/db?sslmode=...
    vector_db_password: OptionalSecret = None  # replaces the DSN's password (Terraform: from Lockbox)
    # The CA certificates (PEM) the database's certificate must chain to, fetched once per instance:
    # Yandex's "Internal Root CA" for Managed PostgreSQL, which no default trust store holds.
    vector_db_ca_url: OptionalUrl = None
    # The same CA as the Cloud Functions runtime ships it: read from here when present (no download
    # at every cold start), VECTOR_DB_CA_URL fetched only where it is absent.
    vector_db_ca_file: str = "/usr/local/share/ca-certificates/yandex-internal-ca.crt"
    vector_db_table: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,50}$")] = "embedding_chunks"
    search_max_top_k: Annotated[int, Field(gt=0, le=1000)] = 100
    # Hybrid search: each side keeps max(4 top_k, SEARCH_CANDIDATES) candidates, fused by reciprocal
    # rank fusion, sum(1 / (SEARCH_RRF_K + rank)).
    search_candidates: Annotated[int, Field(gt=0, le=1000)] = 40
    search_rrf_k: Annotated[int, Field(ge=1, le=10_000)] = 60

    # Reconcile (timer)
    reconcile_max_tokens: Annotated[int, Field(gt=0)] = 2_000_000
    reconcile_page_size: Annotated[int, Field(ge=1, le=10_000)] = 1000  # sources a page lists
    embeddings_price_per_1k_tokens: Annotated[float, Field(ge=0)] = 0.01

    # OCR: Yandex Vision reads images and PDF pages without a usable text layer (pipeline/ocr.py).
    # On by default: a scan dropped in the bucket is expected to be found by its words; each page
    # costs one recognition, which the dry run counts before anything is paid.
    ocr_enabled: bool = True
    ocr_url: Endpoint = "https://ocr.api.cloud.yandex.net/ocr/v1"
    ocr_operations_url: Endpoint = "https://operation.api.cloud.yandex.net/operations"
    ocr_model: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,49}$")] = "page"
    # Comma-separated ISO 639-1 codes, or "*" for Vision to detect the language itself.
    ocr_languages: Annotated[str, Field(pattern=r"^(\*|[a-z]{2}(,[a-z]{2})*)$")] = "ru,en"
    # Recognitions a second for the whole folder (Vision's quota: each PDF page counts as one).
    ocr_rps: Annotated[float, Field(gt=0, le=1000)] = 5.0
    # A document with more pages to recognise than this is parked, before any is paid for.
    ocr_max_pages: Annotated[int, Field(gt=0, le=10_000)] = 200

    # Documents and chunking
    max_source_bytes: PositiveInt = 32 * 1024 * 1024
    max_chunks_per_document: PositiveInt = 50_000
    chunk_max_tokens: Annotated[int, Field(ge=16, le=YANDEX_MODEL_LIMIT_TOKENS)] = 500
    chunk_overlap_tokens: Annotated[int, Field(ge=0)] = 0
    chars_per_token: Annotated[float, Field(gt=0.5, le=10)] = 3.0
    json_text_field: Annotated[str, Field(min_length=1)] = "text"
    pack_records: bool = False  # pack consecutive records of equal metadata into one chunk
    csv_delimiter: Literal[",", ";", "\t", "|"] | None = None  # None: sniffed from the first lines

    # Which deployment writes the outputs (their manifests and marks say so: outputs/claims... see the
    # README's data safety); unset: the function's name. Terraform sets it for both its functions.
    deployment_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")] | None = None

    # Yandex Monitoring: each invocation's counters, in one request at its end (clients/monitoring.py)
    metrics: bool = True
    metrics_url: Endpoint = "https://monitoring.api.cloud.yandex.net/monitoring/v2/data/write"

    # Invocation
    deadline_margin_s: Annotated[float, Field(ge=0, le=600)] = 10.0
    log_level: Annotated[Literal["DEBUG", "INFO", "WARN", "ERROR"], BeforeValidator(_upper)] = "INFO"

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        _check_consistent(self)
        return self

    def model_uri(self, name: str) -> str:
        """Expand a short model name to Yandex's `emb://<folder>/<name>/latest`; a URI is used as is."""
        if "://" in name or not _MODEL_SHORT_NAME.match(name):
            return name
        return f"emb://{self.yc_folder_id}/{name}/latest"

    @property
    def api_keys(self) -> tuple[str, ...]:
        if self.http_api_keys is None:
            return ()
        return tuple(key.strip() for key in self.http_api_keys.get_secret_value().split(",") if key.strip())

    def resolve_model(self, name: str | None) -> str:
        """`doc`/`query`/None pick the configured models; a short name or URI is expanded as usual."""
        if name in (None, "", "doc", "document"):
            return self.document_model_uri
        if name == "query":
            return self.query_model_uri
        return self.model_uri(name)

    @property
    def ocr_language_codes(self) -> list[str]:
        return self.ocr_languages.split(",")

    @property
    def document_model_uri(self) -> str:
        return self.model_uri(self.embeddings_model)

    @property
    def query_model_uri(self) -> str:
        return self.model_uri(self.embeddings_query_model)


def _check_consistent(settings: Settings) -> None:
    """Settings that are each valid but contradict one another."""
    if settings.chunk_overlap_tokens * 2 >= settings.chunk_max_tokens:
        raise ValueError("CHUNK_OVERLAP_TOKENS must be less than half of CHUNK_MAX_TOKENS")
    if settings.source_prefix.startswith(settings.output_prefix):
        raise ValueError(
            "SOURCE_PREFIX must not lie inside OUTPUT_PREFIX: every output would trigger the function again"
        )
    if (settings.aws_access_key_id is None) != (settings.aws_secret_access_key is None):
        raise ValueError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
    for name in ("embeddings_model", "embeddings_query_model"):
        value = getattr(settings, name)
        if not value.startswith("emb://") and not settings.yc_folder_id:
            raise ValueError(f"YC_FOLDER_ID is required to expand {name.upper()}={value!r} to a model URI")


def load_settings(**overrides: object) -> Settings:
    """Read the environment (overrides win); turn pydantic's report into one message per bad variable.

    Each field comes from the variable of its name in any case; values are strings that pydantic
    coerces. Read by hand rather than with pydantic-settings, which costs ~25 ms of every cold start.
    """
    environ = {name.lower(): value for name, value in os.environ.items()}
    values: dict[str, object] = {name: environ[name] for name in Settings.model_fields if name in environ}
    values.update(overrides)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
