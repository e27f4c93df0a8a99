# Source archives: terraform/build_sources.py zips each function folder with the shared/
# package and a requirements.txt (and the project for the migration job) at plan time;
# each zip is uploaded under a name carrying its sha256, so a function is rebuilt and
# redeployed exactly when its source changed. `terraform apply` is the only step.

data "external" "sources" {
  program = ["python3", "${abspath(path.module)}/build_sources.py", "--terraform", "--out", "${abspath(path.module)}/.build"]
}

locals {
  archives = toset(concat(local.source_dirs, ["migrate"]))
}

resource "google_storage_bucket" "sources" {
  name                        = "${var.project_id}-${var.name_prefix}-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = local.labels

  versioning {
    enabled = true
  }

  # Archives are content-addressed: an archive whose code changed is replaced by one of a
  # new name, and the old one becomes a noncurrent (archived) version. Noncurrent versions
  # go after 90 days (a quarter of releases for rollbacks by object name). The live
  # archives, which the functions and the migration job point at, are never deleted,
  # however old: a function whose code has not changed keeps its archive.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      num_newer_versions = 3
    }
    action {
      type = "Delete"
    }
  }

  #checkov:skip=CKV_GCP_62:holds only build inputs (source zips, no data); Cloud Audit Logs record access
  depends_on = [google_project_service.this]
}

resource "google_storage_bucket_object" "source" {
  for_each = local.archives

  bucket       = google_storage_bucket.sources.name
  name         = "sources/${each.key}-${substr(data.external.sources.result["${each.key}_sha256"], 0, 16)}.zip"
  source       = data.external.sources.result[each.key]
  content_type = "application/zip"
}
