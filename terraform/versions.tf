terraform {
  required_version = ">= 1.9.0" # validations that name other variables

  required_providers {
    yandex = {
      source = "yandex-cloud/yandex"
      # yandex_function_iam_member first appears in 0.221.0; the module is checked against 0.222.0.
      version = ">= 0.221.0, < 1.0.0"
    }
    archive = {
      source = "hashicorp/archive"
      # 2.5 is the version whose zip writer function.tf's comments were checked against (source blocks
      # written in name order, with no time and no mode).
      version = "~> 2.5"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }
}

# Credentials come from the environment (YC_TOKEN or YC_SERVICE_ACCOUNT_KEY_FILE), never from files here.
# Message Queue's API takes static keys only: the operator brings keys of an account holding
# ymq.admin (TF_VAR_ymq_access_key / TF_VAR_ymq_secret_key, README "Queue administration"). Provider
# configuration is not written to state, so neither key lands there.
provider "yandex" {
  cloud_id       = var.cloud_id
  folder_id      = var.folder_id
  zone           = var.zone
  ymq_access_key = var.ymq_access_key
  ymq_secret_key = var.ymq_secret_key
}
