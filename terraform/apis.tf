# The APIs the deployment uses, enabled on a fresh project. Left enabled on destroy:
# other workloads in the project may use them too.

locals {
  services = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
    "vpcaccess.googleapis.com",
  ])
}

resource "google_project_service" "this" {
  for_each = local.services

  service            = each.value
  disable_on_destroy = false
}

# Service agents Terraform grants roles to. Google creates an agent lazily (when the API
# is first used), so on a fresh project a grant to it would fail with "service account
# does not exist"; this creates it and gives its address (no project number is read at
# plan time).
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.this]
}
