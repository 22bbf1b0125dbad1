# Secrets reach the function through Lockbox, never as plain environment variables in state or console.

# Without keys of the operator's own, the module makes one: the HTTP API is never open by default.
# The random provider keeps it in state (as every generated secret is): keep the state in an encrypted
# remote backend (README, "State").
resource "random_password" "http_api_key" {
  count   = local.generate_api_key ? 1 : 0
  length  = 48
  special = false
}

locals {
  generate_api_key = nonsensitive(length(var.http_api_keys) == 0)
  http_api_keys    = local.generate_api_key ? [random_password.http_api_key[0].result] : var.http_api_keys
}

# The HTTP API keys. The hashed version keeps only a hash of the value in state.
resource "yandex_lockbox_secret" "api_keys" {
  name        = "${var.name}-http-api-keys"
  description = "HTTP_API_KEYS of the embedding function (X-Api-Key)."
}

resource "yandex_lockbox_secret_version_hashed" "api_keys" {
  secret_id    = yandex_lockbox_secret.api_keys.id
  key_1        = "HTTP_API_KEYS"
  text_value_1 = join(",", local.http_api_keys)

  # Every change of the keys is a new version (the provider replaces this resource), and destroying
  # one schedules it for destruction. Made first, the new version is what the functions are moved
  # to before the old one goes: a rotation never leaves them pointing at a deleted version, even
  # when the functions' update fails half-way.
  lifecycle {
    create_before_destroy = true
  }
}

# The queue sender's static key, written here by the key resource itself (iam.tf, output_to_lockbox).
resource "yandex_lockbox_secret" "queue_key" {
  name        = "${var.name}-queue-key"
  description = "Static key of the queue-sender account (ymq.writer only)."
}

# The function reads these two secrets and nothing else in Lockbox.
resource "yandex_lockbox_secret_iam_member" "function_reads_api_keys" {
  secret_id   = yandex_lockbox_secret.api_keys.id
  role        = "lockbox.payloadViewer"
  member      = "serviceAccount:${yandex_iam_service_account.function.id}"
  sleep_after = var.iam_propagation_s
}

resource "yandex_lockbox_secret_iam_member" "function_reads_queue_key" {
  secret_id   = yandex_lockbox_secret.queue_key.id
  role        = "lockbox.payloadViewer"
  member      = "serviceAccount:${yandex_iam_service_account.function.id}"
  sleep_after = var.iam_propagation_s
}
