# whatsapp-handler on Google Cloud: `terraform init && terraform apply -var project_id=... -var region=...`
# (see terraform/README.md; the operator's steps are in docs/runbook.md).
#
# Terraform 1.11+: no secret value is ever written to the state or shown in a plan (the
# OTP pepper goes through a write-only argument, the Twilio token through a provisioner's
# environment, database users are password-free IAM users).
#
# Checked against the google provider's schema from 6.25.0 to the newest 7.x: every
# argument used exists across the range, and no write-only argument can be null (from
# 7.42.0 secret_data and secret_data_wo are ExactlyOneOf).

terraform {
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.25.0, < 8.0.0"
    }
    # Only for google_project_service_identity (the Pub/Sub service agent), which the GA
    # provider does not have. Same range as google.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.25.0, < 8.0.0"
    }
    # Runs terraform/build_sources.py at plan time (the per-function source archives).
    external = {
      source  = "hashicorp/external"
      version = "~> 2.3"
    }
    # Ephemeral random values: the OTP pepper is generated here and never stored.
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
    # time_sleep: waits for IAM grants to propagate before the functions deploy and the
    # migration job runs.
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }

  # State holds the Redis AUTH string (Memorystore returns it as an attribute): keep it in
  # a private, versioned bucket, e.g.
  #   terraform init -backend-config="bucket=<project>-tfstate" -backend-config="prefix=whatsapp-handler"
  # after uncommenting:
  # backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}
