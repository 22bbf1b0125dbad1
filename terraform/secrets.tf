# Secrets reach the function through Lockbox, never as plain environment variables in state or console.
resource "yandex_lockbox_secret" "function" {
  name        = "${var.name}-function"
  description = "The function's static key and the HTTP API keys."
}

resource "yandex_lockbox_secret_version" "function" {
  secret_id = yandex_lockbox_secret.function.id
  entries {
    key        = "AWS_ACCESS_KEY_ID"
    text_value = yandex_iam_service_account_static_access_key.function.access_key
  }
  entries {
    key        = "AWS_SECRET_ACCESS_KEY"
    text_value = yandex_iam_service_account_static_access_key.function.secret_key
  }
  dynamic "entries" {
    for_each = local.has_api_keys ? [1] : []
    content {
      key        = "HTTP_API_KEYS"
      text_value = join(",", var.http_api_keys)
    }
  }
}

# The function reads this one secret and nothing else in Lockbox.
resource "yandex_lockbox_secret_iam_member" "function_reads_secret" {
  secret_id = yandex_lockbox_secret.function.id
  role      = "lockbox.payloadViewer"
  member    = "serviceAccount:${yandex_iam_service_account.function.id}"
}
