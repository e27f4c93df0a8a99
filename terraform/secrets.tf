# Secrets live in Secret Manager and reach the functions as secret environment
# variables, pinned to a version (locals.tf). Their values never enter the Terraform
# state or a plan: the Twilio token comes in as an ephemeral variable and the OTP pepper
# is generated ephemerally, both written through write-only arguments. The Redis URL
# embeds the AUTH string that Memorystore itself reports (already in state as the
# instance's attribute), so it is written normally.

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

resource "google_secret_manager_secret_version" "twilio_auth_token" {
  secret                 = google_secret_manager_secret.twilio_auth_token.id
  secret_data_wo         = var.twilio_auth_token
  secret_data_wo_version = var.twilio_auth_token_version

  lifecycle {
    # Keep serving the old version until the functions have rolled to the new one.
    create_before_destroy = true
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
