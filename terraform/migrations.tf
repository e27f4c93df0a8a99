# Migrations before traffic (RFC 10.1): a Cloud Run job runs `whatsapp-handler migrate up`
# against Cloud SQL, inside the VPC, as the migrator service account (an IAM database
# user: no password). `terraform apply` executes it whenever the code changes, before
# any function is updated (functions.tf depends on terraform_data.migrate); a failed
# migration stops the apply and the old functions keep serving. By hand:
#
#   gcloud run jobs execute whatsapp-handler-migrate --region REGION --wait                  # up
#   gcloud run jobs execute whatsapp-handler-migrate --region REGION --wait --args=status
#   gcloud run jobs execute whatsapp-handler-migrate --region REGION --wait --args=down,--revision=REV
#
# The job installs the project from its `migrate` archive (the same commit as the
# functions; with the `migrate` extra: Alembic and SQLAlchemy) into a stock Python image, starts the Cloud SQL Auth Proxy on 127.0.0.1 with
# IAM authentication and runs the CLI through it. After `up` it (re)grants the functions'
# database users what they need: DML on the schema's tables, nothing else.

locals {
  migrator_db_user     = trimsuffix(google_service_account.migrator.email, ".gserviceaccount.com")
  migrate_database_url = "postgresql://${urlencode(local.migrator_db_user)}@127.0.0.1:5432/${google_sql_database.main.name}"
  app_db_role          = "whatsapp_handler_app"

  # One statement a line (the job runs them one by one).
  grants_sql = join("\n", concat(
    [
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${local.app_db_role}') THEN CREATE ROLE ${local.app_db_role} NOLOGIN; END IF; END $$",
      "GRANT USAGE ON SCHEMA whatsapp_handler TO ${local.app_db_role}",
      "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA whatsapp_handler TO ${local.app_db_role}",
      "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA whatsapp_handler TO ${local.app_db_role}",
      "ALTER DEFAULT PRIVILEGES IN SCHEMA whatsapp_handler GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${local.app_db_role}",
      "ALTER DEFAULT PRIVILEGES IN SCHEMA whatsapp_handler GRANT USAGE, SELECT ON SEQUENCES TO ${local.app_db_role}",
    ],
    [for k in sort(keys(local.db_iam_user)) : "GRANT ${local.app_db_role} TO \"${local.db_iam_user[k]}\""],
  ))

  migrate_script = <<-EOT
    set -eu
    python - <<'PY'
    import os, urllib.request
    url = ("https://storage.googleapis.com/cloud-sql-connectors/cloud-sql-proxy/"
           + os.environ["PROXY_VERSION"] + "/cloud-sql-proxy.linux.amd64")
    urllib.request.urlretrieve(url, "/tmp/cloud-sql-proxy")
    os.chmod("/tmp/cloud-sql-proxy", 0o755)
    PY
    python -m venv /tmp/venv
    /tmp/venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check "$MIGRATE_ARCHIVE[migrate]"
    /tmp/cloud-sql-proxy --private-ip --auto-iam-authn --address 127.0.0.1 --port 5432 "$CLOUD_SQL_INSTANCE" &
    PROXY_PID=$!
    trap 'kill "$PROXY_PID" 2>/dev/null || true' EXIT
    /tmp/venv/bin/python - <<'PY'
    import socket, time
    for _ in range(60):
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
            break
        except OSError:
            time.sleep(1)
    else:
        raise SystemExit("cloud-sql-proxy did not start listening in 60 s")
    PY
    /tmp/venv/bin/whatsapp-handler migrate "$@"
    if [ "$${1:-}" = "up" ]; then
      /tmp/venv/bin/python - <<'PY'
    import os
    from urllib.parse import unquote, urlsplit
    import pg8000.native
    url = urlsplit(os.environ["DATABASE_URL"])
    connection = pg8000.native.Connection(
        user=unquote(url.username), host=url.hostname, port=url.port, database=url.path.lstrip("/"))
    for statement in os.environ["GRANTS_SQL"].splitlines():
        if statement.strip():
            connection.run(statement)
    connection.close()
    print("grants applied")
    PY
    fi
  EOT
}

resource "google_cloud_run_v2_job" "migrate" {
  name                = "${var.name_prefix}-migrate"
  location            = var.region
  deletion_protection = false
  labels              = local.labels

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account       = google_service_account.migrator.email
      timeout               = "900s"
      max_retries           = 0
      execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

      vpc_access {
        connector = google_vpc_access_connector.main.id
        egress    = "PRIVATE_RANGES_ONLY"
      }

      volumes {
        name = "sources"
        gcs {
          bucket    = google_storage_bucket.sources.name
          read_only = true
        }
      }

      containers {
        image   = var.migrate_image
        command = ["/bin/sh", "-c", local.migrate_script, "migrate"]
        args    = ["up"]

        env {
          name  = "MIGRATE_ARCHIVE"
          value = "/sources/${google_storage_bucket_object.source["migrate"].name}"
        }
        env {
          name  = "CLOUD_SQL_INSTANCE"
          value = google_sql_database_instance.main.connection_name
        }
        env {
          name  = "DATABASE_URL"
          value = local.migrate_database_url
        }
        env {
          name  = "GRANTS_SQL"
          value = local.grants_sql
        }
        env {
          name  = "PROXY_VERSION"
          value = var.cloud_sql_proxy_version
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "1Gi"
          }
        }

        volume_mounts {
          name       = "sources"
          mount_path = "/sources"
        }
      }
    }
  }

  depends_on = [
    google_project_iam_member.sql,
    google_storage_bucket_iam_member.migrator_reads_sources,
  ]
}

# The migrator owns the schema: it needs CREATE on the database, which only a member of
# cloudsqlsuperuser can be given on Cloud SQL. gcloud assigns it (idempotent):
# google_sql_user's database_roles exists only in late 7.x providers, above the floor in
# versions.tf.
resource "terraform_data" "migrator_roles" {
  triggers_replace = [google_sql_user.migrator.id]

  provisioner "local-exec" {
    command = join(" ", [
      "gcloud sql users assign-roles", "'${google_sql_user.migrator.name}'",
      "--instance=${google_sql_database_instance.main.name}",
      "--type=CLOUD_IAM_SERVICE_ACCOUNT",
      "--database-roles=cloudsqlsuperuser",
      "--project=${var.project_id}",
    ])
  }
}

# Runs the migration job whenever the code (the migrate archive) or the job changes.
resource "terraform_data" "migrate" {
  count = var.run_migrations_on_apply ? 1 : 0

  triggers_replace = [
    google_storage_bucket_object.source["migrate"].name,
    google_cloud_run_v2_job.migrate.id,
    join(",", sort(values(local.db_iam_user))),
  ]

  provisioner "local-exec" {
    command = join(" ", [
      "gcloud run jobs execute", google_cloud_run_v2_job.migrate.name,
      "--region=${var.region}",
      "--project=${var.project_id}",
      "--wait",
    ])
  }

  depends_on = [
    terraform_data.migrator_roles,
    google_sql_user.function,
    google_sql_database.main,
    # The migrator's Cloud SQL and bucket grants have propagated.
    time_sleep.iam_propagation,
  ]
}
