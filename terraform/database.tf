# Cloud SQL for PostgreSQL 15 (RFC 2.2): private IP only, SSL required, IAM database
# authentication (no passwords: each function's service account is a database user),
# daily backups kept 30 days with point-in-time recovery (RFC 8.1).

resource "google_sql_database_instance" "main" {
  name                = var.name_prefix
  region              = var.region
  database_version    = "POSTGRES_15" #checkov:skip=CKV_GCP_79:RFC 2.2 fixes PostgreSQL 15; a major upgrade is its own change
  deletion_protection = var.db_deletion_protection

  settings {
    tier                        = var.db_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.db_availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.db_disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.db_deletion_protection
    user_labels                 = local.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.main.id
      enable_private_path_for_google_cloud_services = true
      # TLS with a client certificate signed by the instance: the Cloud SQL Python
      # connector (functions) and the Auth Proxy (migration job) present one; nothing else
      # can connect, even from inside the VPC.
      ssl_mode = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "02:00" # UTC, before the 03:00 GDPR run
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = var.db_pitr_days

      backup_retention_settings {
        retained_backups = var.db_backup_retention_days
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7 # Sunday
      hour         = 4 # UTC
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "max_connections"
      value = tostring(var.db_max_connections)
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    # -1: statements are never logged with their text (they carry phone numbers as parameters).
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    #checkov:skip=CKV2_GCP_13:log_duration writes a line per statement at webhook rates; query durations come from whatsapp_db_query_duration_seconds and Query Insights
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }

  lifecycle {
    precondition {
      condition     = local.function_connections + var.db_reserved_connections <= var.db_max_connections
      error_message = "function_scaling allows more connections (sum of max_instances x pool_size, plus db_reserved_connections) than db_max_connections: lower max_instances or pool_size, or raise db_max_connections. See terraform/README.md."
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "main" {
  name     = "whatsapp_handler"
  instance = google_sql_database_instance.main.name
}

# One IAM database user per function service account, plus the migrator (which owns the
# schema; see migrations.tf). No passwords exist anywhere.
resource "google_sql_user" "function" {
  for_each = google_service_account.function

  name     = local.db_iam_user[each.key]
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

resource "google_sql_user" "migrator" {
  name     = trimsuffix(google_service_account.migrator.email, ".gserviceaccount.com")
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}
