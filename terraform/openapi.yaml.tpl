openapi: 3.0.0
info:
  title: Embedding pipeline
  version: 1.0.0
x-yc-apigateway:
  service_account_id: ${service_account_id}
  # One limit for the whole gateway: callers beyond it get 429 from the gateway, before any
  # invocation. Not per path: the per-path extension (x-yc-apigateway-rate-limit) does not support
  # paths with greedy parameters such as /v1/documents/{key+} (en/api-gateway/concepts/extensions/
  # rate-limit.md): the document status route would have none. The gateway-wide one limits "all
  # requests to the API gateway" together, whatever path they match, /healthz included.
  rateLimit:
    allRequests:
      rps: ${rate_limit_rps}
# Every operation but /healthz invokes the HTTP function with payload format 1.0, which carries the
# actual request path in `path`; the handler routes on it.
#
# Authentication: the function is the API key authorizer. Every operation that reaches it answers
# 401 without X-Api-Key and 403 with a key not in HTTP_API_KEYS, compared in constant time
# (handlers/http/router.py, ROUTES). Terraform always sets HTTP_API_KEYS (given or generated, secrets.tf),
# and refuses to publish this gateway without it. /healthz, the one open path, is answered here by
# the gateway (a static reply): it reads nothing, spends nothing and invokes no function.
# A gateway `x-yc-apigateway-authorizer` of type function would invoke a function for every request
# with a new key as well, so it adds invocations without adding a check; the platform's own API keys
# (type iam) would require every caller to be a Yandex Cloud account.
paths:
  /healthz:
    get:
      operationId: healthz
      x-yc-apigateway-integration:
        type: dummy
        http_code: 200
        http_headers:
          Content-Type: application/json
        content:
          "*": '{"status": "ok", "answered_by": "api-gateway"}'
  /v1/embeddings:
    post:
      operationId: createEmbeddings
      x-yc-apigateway-integration:
        type: cloud_functions
        function_id: ${function_id}
        tag: "$latest"
        service_account_id: ${service_account_id}
        payload_format_version: "1.0"
  /v1/documents:
    post:
      operationId: submitDocument
      x-yc-apigateway-integration:
        type: cloud_functions
        function_id: ${function_id}
        tag: "$latest"
        service_account_id: ${service_account_id}
        payload_format_version: "1.0"
  /v1/search:
    post:
      operationId: searchChunks
      x-yc-apigateway-integration:
        type: cloud_functions
        function_id: ${function_id}
        tag: "$latest"
        service_account_id: ${service_account_id}
        payload_format_version: "1.0"
  /v1/documents/{key+}:
    get:
      operationId: documentStatus
      parameters:
        - name: key
          in: path
          required: true
          schema:
            type: string
      x-yc-apigateway-integration:
        type: cloud_functions
        function_id: ${function_id}
        tag: "$latest"
        service_account_id: ${service_account_id}
        payload_format_version: "1.0"
