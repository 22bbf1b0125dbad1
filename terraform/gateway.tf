# The HTTP API. Its function stays private: only this gateway's service account may invoke it, and it
# answers 401/403 to any request without one of HTTP_API_KEYS in X-Api-Key (openapi.yaml.tpl says why
# that check, not a gateway authorizer, is the API key authorizer). /healthz is answered by the
# gateway itself and reaches no function.
resource "yandex_api_gateway" "http" {
  name        = "${var.name}-http"
  description = "OpenAI-compatible embeddings, document submission and search."
  spec = templatefile("${path.module}/openapi.yaml.tpl", {
    function_id        = yandex_function.pipeline["http"].id
    service_account_id = yandex_iam_service_account.gateway.id
    rate_limit_rps     = var.http_rate_limit_rps
  })
  # The gateway waits as long as the function may run, so a slow reply is the function's own 504,
  # with its reason, rather than the gateway's.
  execution_timeout = tostring(var.http_function_timeout_s)
  depends_on        = [yandex_function_iam_member.gateway_invoke]

  lifecycle {
    # Never publish an API that trusts every caller: keys are either given or generated (secrets.tf).
    precondition {
      condition     = length(local.http_api_keys) > 0
      error_message = "The HTTP API needs at least one key: set http_api_keys or leave it empty to generate one."
    }
  }
}
