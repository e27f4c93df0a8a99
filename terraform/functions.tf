# The six functions-framework targets of contract section 3 as Cloud Functions (2nd gen).
# Their settings, secrets, timeouts and ingress come from locals.tf; their scaling from
# var.function_scaling (instances x DB_POOL_SIZE fits Cloud SQL's max_connections:
# checked by a precondition in database.tf, explained in README.md).
#
# Two blocks with the same body: the public webhook, and the five functions that only
# Google services or named accounts reach. Apart from the ingress they are generated
# from the same tables (tests/terraform/test_hcl.py checks that the bodies agree).

locals {
  # Every function by target, whichever block declares it.
  function = merge({ webhook = google_cloudfunctions2_function.webhook }, google_cloudfunctions2_function.internal)
}

resource "google_cloudfunctions2_function" "webhook" {
  name        = local.function_names["webhook"]
  location    = var.region
  description = local.functions["webhook"].description
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = local.functions["webhook"].entry_point
    service_account = google_service_account.builder.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[local.functions["webhook"].source].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function["webhook"].email
    timeout_seconds                  = local.functions["webhook"].timeout_seconds
    available_memory                 = local.functions["webhook"].memory
    available_cpu                    = local.functions["webhook"].cpu
    max_instance_count               = var.function_scaling["webhook"].max_instances
    min_instance_count               = var.function_scaling["webhook"].min_instances
    max_instance_request_concurrency = var.function_scaling["webhook"].concurrency
    ingress_settings                 = local.functions["webhook"].ingress #checkov:skip=CKV_GCP_124:Twilio must reach the webhook from the internet; X-Twilio-Signature authenticates every request
    all_traffic_on_latest_revision   = true
    vpc_connector                    = google_vpc_access_connector.main.id
    vpc_connector_egress_settings    = "PRIVATE_RANGES_ONLY"
    environment_variables            = local.function_env["webhook"]

    dynamic "secret_environment_variables" {
      for_each = toset(local.functions["webhook"].secrets)
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = local.secrets[secret_environment_variables.value].secret_id
        version    = local.secrets[secret_environment_variables.value].version
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.function,
    google_project_iam_member.sql,
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_sources,
    google_sql_user.function,
    # The grants above have propagated; the Twilio token's secret has its version.
    time_sleep.iam_propagation,
    terraform_data.twilio_auth_token_first_version,
    # RFC 10.1: the schema is migrated before a new version takes traffic.
    terraform_data.migrate,
  ]
}

resource "google_cloudfunctions2_function" "internal" {
  for_each = local.internal_functions

  name        = local.function_names[each.key]
  location    = var.region
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = each.value.entry_point
    service_account = google_service_account.builder.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.value.source].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function[each.key].email
    timeout_seconds                  = each.value.timeout_seconds
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    max_instance_count               = var.function_scaling[each.key].max_instances
    min_instance_count               = var.function_scaling[each.key].min_instances
    max_instance_request_concurrency = var.function_scaling[each.key].concurrency
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    vpc_connector                    = google_vpc_access_connector.main.id
    vpc_connector_egress_settings    = "PRIVATE_RANGES_ONLY"
    environment_variables            = local.function_env[each.key]

    dynamic "secret_environment_variables" {
      for_each = toset(each.value.secrets)
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = local.secrets[secret_environment_variables.value].secret_id
        version    = local.secrets[secret_environment_variables.value].version
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.function,
    google_project_iam_member.sql,
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_sources,
    google_sql_user.function,
    # The grants above have propagated; the Twilio token's secret has its version.
    time_sleep.iam_propagation,
    terraform_data.twilio_auth_token_first_version,
    # RFC 10.1: the schema is migrated before a new version takes traffic.
    terraform_data.migrate,
  ]
}
