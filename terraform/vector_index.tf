# The optional vector index: PostgreSQL with pgvector, which the functions fill from the records
# (ingestion) and search (POST /v1/search). The code creates its table and HNSW index on first use;
# Terraform provides the database, the extension, a user and the way to reach them. README, "Vector
# index", has the network, TLS, cost and teardown.

locals {
  # What each mode builds and sets. "none" adds nothing: no resource, no VECTOR_DB_* setting, no
  # network for the functions.
  vector_index_modes = {
    none     = { cluster = false, settings = false }
    managed  = { cluster = true, settings = true }
    existing = { cluster = false, settings = true }
  }
  vector_index = local.vector_index_modes[var.vector_index]

  # What vector_index's rules check of the operator's sensitive inputs, without their values.
  vector_db_dsn_given       = nonsensitive(var.vector_db_dsn != null)
  vector_db_dsn_is_url      = nonsensitive(var.vector_db_dsn == null || can(regex("^postgres(ql)?://", var.vector_db_dsn)))
  vector_db_password_given  = nonsensitive(var.vector_db_password != null)
  vector_db_password_usable = nonsensitive(var.vector_db_password == null || try(length(var.vector_db_password) > 0, false))

  vector_db_name = "embeddings"
  vector_db_user = "embedding_pipeline"
  # Each instance's asyncpg pool holds at most 2 connections (embedding_pipeline/vector_index/
  # postgres.py) and functions run instances in each of the region's 3 zones (README, "Capacity").
  # The spare ones cover an operator's psql session and the connections of stopped instances that
  # the server has not yet seen close.
  vector_db_pool_size         = 2
  vector_db_function_zones    = 3
  vector_db_spare_connections = 10
  vector_db_conn_limit = (
    local.vector_db_function_zones * (var.instances_per_zone + var.http_instances_per_zone) * local.vector_db_pool_size
    + local.vector_db_spare_connections
  )

  vector_db_network_created = local.vector_index.cluster && var.vector_db_network_id == null
  vector_db_network_id      = local.vector_db_network_created ? one(yandex_vpc_network.vector_db[*].id) : var.vector_db_network_id
  vector_db_subnet_id       = local.vector_db_network_created ? yandex_vpc_subnet.vector_db[var.zone].id : var.vector_db_subnet_id
  # Known at plan time (variables only), as a dynamic block's for_each must be.
  functions_join_network = local.vector_index.settings && (local.vector_db_network_created || var.vector_db_network_id != null)

  # The special FQDN of the current master, and the service's port (6432, not configurable).
  # verify-full checks the server's certificate and that it names this host.
  vector_db_cluster_id = one(yandex_mdb_postgresql_cluster.vector_db[*].id)
  vector_db_host       = local.vector_index.cluster ? "c-${local.vector_db_cluster_id}.rw.mdb.yandexcloud.net" : null
  vector_db_managed_dsn = local.vector_index.cluster ? format(
    "postgresql://%s@%s:6432/%s?sslmode=verify-full",
    yandex_mdb_postgresql_user.vector_db[0].name,
    local.vector_db_host,
    yandex_mdb_postgresql_database.vector_db[0].name,
  ) : null
  # Managed PostgreSQL's certificates chain to Yandex's Internal Root CA, which no default trust store
  # holds (asyncpg's verify-full otherwise wants a file): the functions fetch it from where Yandex
  # publishes it, over HTTPS checked against the public CAs.
  vector_db_yandex_ca_url = "https://storage.yandexcloud.net/cloud-certs/CA.pem"
  vector_db_ca_url = (
    local.vector_index.cluster ? local.vector_db_yandex_ca_url
    : local.vector_index.settings ? var.vector_db_ca_url : null
  )
  vector_db_dsn          = local.vector_index.cluster ? local.vector_db_managed_dsn : var.vector_db_dsn
  vector_db_password     = local.vector_index.cluster ? one(random_password.vector_db[*].result) : var.vector_db_password
  vector_db_has_password = local.vector_index.cluster || local.vector_db_password_given

  # Both settings come from Lockbox: an operator's DSN may hold a password, and the password is one.
  vector_db_secret_keys = local.vector_index.settings ? concat(
    ["VECTOR_DB_DSN"], local.vector_db_has_password ? ["VECTOR_DB_PASSWORD"] : []
  ) : []
  vector_db_secret_environment = {
    for key in local.vector_db_secret_keys : key => {
      secret  = yandex_lockbox_secret.vector_db[0].id
      version = yandex_lockbox_secret_version_hashed.vector_db[0].id
    }
  }
}

# Functions in a network need a subnet in every availability zone; the cluster's host takes the one
# in var.zone.
resource "yandex_vpc_network" "vector_db" {
  count       = local.vector_db_network_created ? 1 : 0
  name        = "${var.name}-vector-db"
  description = "The vector index's cluster, and the functions that reach it."
}

resource "yandex_vpc_subnet" "vector_db" {
  for_each       = local.vector_db_network_created ? var.vector_db_subnet_cidrs : {}
  name           = "${var.name}-vector-db-${each.key}"
  zone           = each.key
  network_id     = yandex_vpc_network.vector_db[0].id
  v4_cidr_blocks = [each.value]
}

# Without a group of its own the cluster would get the network's default group, which lets any
# traffic in. This one admits the pooler's port from the functions, whose instances take addresses
# in 198.19.0.0/16 in a user network, and from whatever the operator lists.
resource "yandex_vpc_security_group" "vector_db" {
  count       = local.vector_index.cluster ? 1 : 0
  name        = "${var.name}-vector-db"
  description = "PostgreSQL of the vector index: the connection pooler's port, from the functions only."
  network_id  = local.vector_db_network_id

  ingress {
    description    = "Connection pooler, from the functions and the operator's sources"
    protocol       = "TCP"
    port           = 6432
    v4_cidr_blocks = concat(["198.19.0.0/16"], var.vector_db_allowed_cidrs)
  }
}

resource "yandex_mdb_postgresql_cluster" "vector_db" {
  count               = local.vector_index.cluster ? 1 : 0
  name                = "${var.name}-vector-db"
  description         = "Vector index of the embedding pipeline (pgvector), filled from the bucket's records."
  environment         = "PRODUCTION"
  network_id          = local.vector_db_network_id
  security_group_ids  = [yandex_vpc_security_group.vector_db[0].id]
  deletion_protection = var.vector_db_deletion_protection

  config {
    version = var.vector_db_postgresql_version
    resources {
      resource_preset_id = var.vector_db_preset
      disk_type_id       = "network-ssd"
      disk_size          = var.vector_db_disk_size_gb
    }
    # Nothing reaches the cluster but the functions, over the network. The serverless access is for
    # Cloud Functions' database connections, which log in with an IAM token: this code uses a
    # password.
    access {
      data_lens     = false
      data_transfer = false
      serverless    = false
      web_sql       = false
    }
  }

  # One host: the index is derived from the bucket and can be rebuilt, so it does not pay for a
  # replica. A host added later is reached through the same special FQDN.
  host {
    zone             = var.zone
    subnet_id        = local.vector_db_subnet_id
    assign_public_ip = false
  }
}

# Kept in state, as the generated API key is: keep the state in a private backend (README, "State").
resource "random_password" "vector_db" {
  count   = local.vector_index.cluster ? 1 : 0
  length  = 32
  special = false
}

# The functions' only database user. No grants: no mdb_admin, mdb_monitor or mdb_replication roles,
# and no permission on any database but the one it owns.
resource "yandex_mdb_postgresql_user" "vector_db" {
  count      = local.vector_index.cluster ? 1 : 0
  cluster_id = yandex_mdb_postgresql_cluster.vector_db[0].id
  name       = local.vector_db_user
  password   = random_password.vector_db[0].result
  conn_limit = local.vector_db_conn_limit
  grants     = []
  settings = {
    # asyncpg keeps prepared statements per connection, which transaction pooling would share out.
    pool_mode = "session"
  }
}

# The database's owner gets access to it with no permission block. Managed PostgreSQL refuses
# CREATE EXTENSION in SQL: the extension is enabled here.
resource "yandex_mdb_postgresql_database" "vector_db" {
  count      = local.vector_index.cluster ? 1 : 0
  cluster_id = yandex_mdb_postgresql_cluster.vector_db[0].id
  name       = local.vector_db_name
  owner      = yandex_mdb_postgresql_user.vector_db[0].name

  # A UTF-8 locale makes PostgreSQL's own lower() and sorting right for Cyrillic; correctness of search
  # does not depend on it (the pipeline case-folds text itself). Fixed at creation, and ForceNew in the
  # provider: a database made before this setting keeps its C locale instead of being replaced.
  lc_collate = var.vector_db_locale
  lc_type    = var.vector_db_locale

  extension {
    name = var.vector_db_extension
  }

  lifecycle {
    ignore_changes = [lc_collate, lc_type]
  }
}

# VECTOR_DB_DSN and VECTOR_DB_PASSWORD. The hashed version keeps only hashes of them in state.
resource "yandex_lockbox_secret" "vector_db" {
  count       = local.vector_index.settings ? 1 : 0
  name        = "${var.name}-vector-db"
  description = "VECTOR_DB_DSN and VECTOR_DB_PASSWORD of the embedding functions."
}

resource "yandex_lockbox_secret_version_hashed" "vector_db" {
  count        = local.vector_index.settings ? 1 : 0
  secret_id    = yandex_lockbox_secret.vector_db[0].id
  key_1        = "VECTOR_DB_DSN"
  text_value_1 = local.vector_db_dsn
  key_2        = local.vector_db_has_password ? "VECTOR_DB_PASSWORD" : null
  text_value_2 = local.vector_db_has_password ? local.vector_db_password : null

  # As the API keys' version (secrets.tf): the new one first, then the functions, then the old one.
  # Terraform extends create_before_destroy to everything this depends on (the cluster, its user
  # and database, the network, subnets and security group): one of those that must be replaced gets
  # its successor first ("create replacement and then destroy" in the plan). Where a name must be
  # unique that apply fails before anything is deleted, which for the index's data is the safe way.
  lifecycle {
    create_before_destroy = true
  }
}

resource "yandex_lockbox_secret_iam_member" "function_reads_vector_db" {
  count       = local.vector_index.settings ? 1 : 0
  secret_id   = yandex_lockbox_secret.vector_db[0].id
  role        = "lockbox.payloadViewer"
  member      = "serviceAccount:${yandex_iam_service_account.function.id}"
  sleep_after = var.iam_propagation_s
}
