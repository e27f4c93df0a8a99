# whatsapp-handler on Google Cloud: `terraform init && terraform apply -var project_id=... -var region=...`
# (see terraform/README.md; the operator's steps are in docs/runbook.md).
#
# Terraform 1.11+: secrets reach Secret Manager through write-only arguments
# (secret_data_wo, password-free IAM database users), so no secret value is ever
# written to the state or shown in a plan.

terraform {
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
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
