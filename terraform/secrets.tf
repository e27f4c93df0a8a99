# Secrets live in Secret Manager and reach the functions as secret environment
# variables, pinned to a version (locals.tf). Their values never enter the Terraform
# state or a plan:
# - the Twilio token is the operator's: Terraform makes the secret, and on the first apply
#   into a fresh project adds its first version from TF_VAR_twilio_auth_token (below);
#   rotation adds versions with gcloud and moves twilio_auth_token_version. No later plan
#   needs the token, on any provider version (a null write-only argument fails every plan
#   from google provider 7.42, where secret_data and secret_data_wo are ExactlyOneOf).
# - the OTP pepper is generated ephemerally and written through a write-only argument
#   (never null).
# - the Redis URL embeds the AUTH string that Memorystore itself reports (already in state
#   as the instance's attribute), so it is written normally.

resource "google_secret_manager_secret" "twilio_auth_token" {
  secret_id = "${var.name_prefix}-twilio-auth-token"
  labels    = local.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.this]
}

# Seeds an empty secret, once: when the secret is created (a fresh project, or the secret
# deleted and made again). A secret that already has a version is left alone, so applies
# without the token pass. The token reaches gcloud on its standard input, never on a
# command line, and Terraform suppresses the provisioner's output (sensitive value).
resource "terraform_data" "twilio_auth_token_first_version" {
  triggers_replace = [google_secret_manager_secret.twilio_auth_token.id]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      set -eu
      # An assignment, so that a failing gcloud stops here (set -e) instead of reading as
      # "no version yet".
      versions=$(gcloud secrets versions list "$SECRET" --project="$PROJECT" --limit=1 --format='value(name)')
      if [ -n "$versions" ]; then
        echo "$SECRET already has a version: left as it is"
        exit 0
      fi
      if [ -z "$TWILIO_AUTH_TOKEN" ]; then
        echo "$SECRET has no version yet: export TF_VAR_twilio_auth_token (docs/runbook.md, first deploy) and apply again" >&2
        exit 1
      fi
      printf '%s' "$TWILIO_AUTH_TOKEN" | gcloud secrets versions add "$SECRET" --project="$PROJECT" --data-file=-
    EOT
    environment = {
      SECRET            = google_secret_manager_secret.twilio_auth_token.secret_id
      PROJECT           = var.project_id
      TWILIO_AUTH_TOKEN = var.twilio_auth_token == null ? "" : var.twilio_auth_token
    }
  }
}

# The version Terraform used to write through secret_data_wo (before issue 22): forget it,
# keep it in Secret Manager (the functions may still read it).
removed {
  from = google_secret_manager_secret_version.twilio_auth_token

  lifecycle {
    destroy = false
  }
}

resource "google_secret_manager_secret" "otp_pepper" {
  secret_id = "${var.name_prefix}-otp-pepper"
  labels    = local.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.this]
}

ephemeral "random_password" "otp_pepper" {
  length  = 64
  special = false
}

resource "google_secret_manager_secret_version" "otp_pepper" {
  secret                 = google_secret_manager_secret.otp_pepper.id
  secret_data_wo         = ephemeral.random_password.otp_pepper.result
  secret_data_wo_version = var.otp_pepper_version

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_secret_manager_secret" "redis_url" {
  secret_id = "${var.name_prefix}-redis-url"
  labels    = local.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_version" "redis_url" {
  secret      = google_secret_manager_secret.redis_url.id
  secret_data = local.redis_url

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_secret_manager_secret_iam_member" "function" {
  for_each = local.secret_grants

  secret_id = local.secrets[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.value.function].member
}
