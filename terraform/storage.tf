resource "yandex_kms_symmetric_key" "bucket" {
  count             = var.kms_encryption ? 1 : 0
  name              = "${var.name}-bucket"
  description       = "Encrypts the embeddings bucket."
  default_algorithm = "AES_256"
  rotation_period   = "8760h"
  # Objects encrypted with a destroyed key are unreadable for good (72 hours after deletion): neither
  # the API nor Terraform may delete it. Turning kms_encryption off therefore fails at plan; remove
  # the protection by hand first, once no object needs the key.
  deletion_protection = true
  lifecycle {
    prevent_destroy = true
  }
}

# With KMS on, the function must encrypt and decrypt what it reads and writes.
resource "yandex_kms_symmetric_key_iam_member" "function_bucket_key" {
  count            = var.kms_encryption ? 1 : 0
  symmetric_key_id = yandex_kms_symmetric_key.bucket[0].id
  role             = "kms.keys.encrypterDecrypter"
  member           = "serviceAccount:${yandex_iam_service_account.function.id}"
}

resource "yandex_storage_bucket" "docs" {
  bucket    = var.bucket_name
  folder_id = var.folder_id

  # The function reads and writes with its IAM token, and the only static key the module makes is
  # for Message Queue: no static key, leaked or forgotten, opens this bucket unless asked for.
  disabled_statickey_auth = !var.bucket_static_key_access

  # Private: no anonymous read, list or configuration read.
  anonymous_access_flags {
    read        = false
    list        = false
    config_read = false
  }

  dynamic "server_side_encryption_configuration" {
    for_each = var.kms_encryption ? [1] : []
    content {
      rule {
        apply_server_side_encryption_by_default {
          kms_master_key_id = yandex_kms_symmetric_key.bucket[0].id
          sse_algorithm     = "aws:kms"
        }
      }
    }
  }

  # Reconcile writes a report every tick: keep them for a while, not forever.
  lifecycle_rule {
    id      = "expire-reconcile-reports"
    enabled = true
    filter {
      prefix = "${var.output_prefix}_reports/"
    }
    expiration {
      days = var.report_retention_days
    }
  }

  # Instances announce themselves under _quota/ while they embed, and delete the announcement when
  # done; one that crashed leaves it behind, harmless (it stops counting after seconds) but litter.
  lifecycle_rule {
    id      = "expire-quota-announcements"
    enabled = true
    filter {
      prefix = "${var.output_prefix}_quota/"
    }
    expiration {
      days = 1
    }
  }

  # A records upload cut off mid-way leaves parts behind; S3 keeps (and bills) them until aborted.
  lifecycle_rule {
    id                                     = "abort-incomplete-uploads"
    enabled                                = true
    abort_incomplete_multipart_upload_days = 2
  }
}
