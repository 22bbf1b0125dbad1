# The HTTP API. The function stays private: only this gateway's service account may invoke it.
resource "yandex_api_gateway" "http" {
  name        = "${var.name}-http"
  description = "OpenAI-compatible embeddings and document submission."
  spec = templatefile("${path.module}/openapi.yaml.tpl", {
    function_id        = yandex_function.pipeline.id
    service_account_id = yandex_iam_service_account.gateway.id
  })
  depends_on = [yandex_function_iam_member.gateway_invoke]
}
