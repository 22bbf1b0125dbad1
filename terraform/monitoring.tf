# A dashboard of the counters the functions write with METRICS on (iam.tf has the role). Each is a
# custom metric (service "custom") named as below, written with the labels `trigger` and `bucket`.
# The charts read each point as one invocation's count (a delta, not a running total) and sum every
# series of a metric (all triggers, all buckets) per 5 minutes. Deployments that share a folder
# share these metrics: their dashboards show the sum of both.
locals {
  metrics_charts = [
    {
      id      = "documents"
      title   = "Documents: embedded, unchanged, parked (per 5 min)"
      metrics = ["documents_embedded", "documents_unchanged", "documents_parked"]
    },
    {
      id      = "api"
      title   = "Embeddings API: requests, 429s, retries (per 5 min)"
      metrics = ["api_requests", "throttled", "retries"]
    },
    {
      id      = "tokens"
      title   = "Embeddings tokens (per 5 min)"
      metrics = ["tokens"]
    },
    {
      id      = "reconcile"
      title   = "Reconcile findings: missing, stale, orphaned (per 5 min)"
      metrics = ["reconcile_missing", "reconcile_stale", "reconcile_orphaned"]
    },
    {
      id      = "continuations"
      title   = "Queue continuations and index failures (per 5 min)"
      metrics = ["queue_continuations", "index_failures"]
    },
    {
      id      = "ocr"
      title   = "Vision OCR: pages, requests, 429s (per 5 min)"
      metrics = ["ocr_pages", "ocr_requests", "ocr_throttled"]
    },
  ]
  # Two charts a row.
  metrics_chart_width  = 12
  metrics_chart_height = 8
}

resource "yandex_monitoring_dashboard" "pipeline" {
  count       = var.metrics ? 1 : 0
  name        = "${var.name}-pipeline"
  folder_id   = var.folder_id
  title       = "Embedding pipeline: ${var.name}"
  description = "Counters the embedding functions write to Monitoring (METRICS)."

  dynamic "widgets" {
    for_each = local.metrics_charts
    content {
      position {
        x = (widgets.key % 2) * local.metrics_chart_width
        y = floor(widgets.key / 2) * local.metrics_chart_height
        w = local.metrics_chart_width
        h = local.metrics_chart_height
      }
      chart {
        chart_id       = widgets.value.id
        title          = widgets.value.title
        display_legend = true
        queries {
          # Monitoring's query language: the folder and service labels are required, and the
          # metric's name is its `name` label; series_sum adds up every trigger's and bucket's series
          # at each point of the 5-minute grid below (en/monitoring/concepts/querying.md).
          dynamic "target" {
            for_each = widgets.value.metrics
            content {
              query     = "alias(series_sum({folderId=\"${var.folder_id}\", service=\"custom\", name=\"${target.value}\"}), \"${target.value}\")"
              text_mode = true
            }
          }
          # Each point is one invocation's count: the grid adds them up per 5 minutes (300,000 ms).
          downsampling {
            grid_aggregation = "GRID_AGGREGATION_SUM"
            grid_interval    = 300000
          }
        }
      }
    }
  }
}
