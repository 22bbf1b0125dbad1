openapi: 3.0.0
info:
  title: Embedding pipeline
  version: 1.0.0
x-yc-apigateway:
  service_account_id: ${service_account_id}
# Every operation invokes the function with payload format 1.0, which carries the actual request path
# in `path`; the handler routes on it.
paths:
  /healthz:
    get:
      operationId: healthz
      x-yc-apigateway-integration:
        type: cloud_functions
        function_id: ${function_id}
        tag: "$latest"
        service_account_id: ${service_account_id}
        payload_format_version: "1.0"
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
