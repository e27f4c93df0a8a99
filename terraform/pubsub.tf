# Events out (contract section 6) and notification requests in (section 6a).
#
# events:         the relay publishes here; ordering key = aggregate_id.
#   example consumer subscription: ordering on, retries with backoff, dead letters after 10.
# notifications:  downstream services publish here; a push subscription delivers each
#   request to `notify` (OIDC-authenticated), retries with backoff and dead-letters after
#   10 attempts. A Terraform-owned push subscription, rather than the Eventarc trigger a
#   function can declare, because Eventarc's own subscription cannot be given a
#   dead-letter policy from Terraform. functions-framework turns the push body into the
#   same CloudEvent Eventarc would deliver (tests/terraform/test_push_delivery.py).

locals {
  message_retention = "604800s" # 7 days, Pub/Sub's maximum for subscriptions
}

resource "google_pubsub_topic" "events" {
  name                       = "${var.name_prefix}-events"
  labels                     = local.labels
  message_retention_duration = local.message_retention

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  #checkov:skip=CKV_GCP_83:Google-managed encryption; events carry ids, never phone numbers (contract section 6)
  depends_on = [google_project_service.this]
}

resource "google_pubsub_topic" "events_dead_letter" {
  name                       = "${var.name_prefix}-events-dead-letter"
  labels                     = local.labels
  message_retention_duration = local.message_retention

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  #checkov:skip=CKV_GCP_83:Google-managed encryption; events carry ids, never phone numbers
  depends_on = [google_project_service.this]
}

# What a downstream consumer's subscription should look like; journey-matcher et al. copy it.
resource "google_pubsub_subscription" "events_example" {
  name                       = "${var.name_prefix}-events-example-consumer"
  topic                      = google_pubsub_topic.events.id
  labels                     = local.labels
  enable_message_ordering    = true
  ack_deadline_seconds       = 60
  message_retention_duration = local.message_retention

  expiration_policy {
    ttl = "" # never expires, even when nobody pulls for a while
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.events_dead_letter.id
    max_delivery_attempts = 10
  }
}

# Keeps dead-lettered events readable (`gcloud pubsub subscriptions pull`) for 7 days.
resource "google_pubsub_subscription" "events_dead_letter" {
  name                       = "${var.name_prefix}-events-dead-letter"
  topic                      = google_pubsub_topic.events_dead_letter.id
  labels                     = local.labels
  ack_deadline_seconds       = 60
  message_retention_duration = local.message_retention

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_topic" "notifications" {
  name                       = "${var.name_prefix}-notifications"
  labels                     = local.labels
  message_retention_duration = local.message_retention

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  #checkov:skip=CKV_GCP_83:Google-managed encryption; requests carry a user id and text, never a phone number
  depends_on = [google_project_service.this]
}

resource "google_pubsub_topic" "notifications_dead_letter" {
  name                       = "${var.name_prefix}-notifications-dead-letter"
  labels                     = local.labels
  message_retention_duration = local.message_retention

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  #checkov:skip=CKV_GCP_83:Google-managed encryption; requests carry a user id and text, never a phone number
  depends_on = [google_project_service.this]
}

resource "google_pubsub_subscription" "notify_push" {
  name                       = "${var.name_prefix}-notifications-notify"
  topic                      = google_pubsub_topic.notifications.id
  labels                     = local.labels
  message_retention_duration = local.message_retention
  # Pub/Sub waits this long for notify's answer before redelivering: its timeout.
  ack_deadline_seconds = local.functions["notify"].timeout_seconds

  push_config {
    push_endpoint = local.function["notify"].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.function["notify"].service_config[0].uri
    }
  }

  expiration_policy {
    ttl = ""
  }

  # A failure notify raises (Twilio 5xx/429/timeout) is retried with backoff; after
  # 10 deliveries the request goes to the dead-letter topic instead of looping.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.notifications_dead_letter.id
    max_delivery_attempts = 10
  }

  # The push account may invoke notify, and Pub/Sub's agent may mint its tokens.
  depends_on = [
    google_cloud_run_service_iam_member.push_notify,
    google_service_account_iam_member.pubsub_mints_push_tokens,
  ]
}

resource "google_pubsub_subscription" "notifications_dead_letter" {
  name                       = "${var.name_prefix}-notifications-dead-letter"
  topic                      = google_pubsub_topic.notifications_dead_letter.id
  labels                     = local.labels
  ack_deadline_seconds       = 60
  message_retention_duration = local.message_retention

  expiration_policy {
    ttl = ""
  }
}

# Downstream services may publish notification requests.
resource "google_pubsub_topic_iam_member" "notification_publishers" {
  for_each = toset(var.notification_publisher_members)

  topic  = google_pubsub_topic.notifications.id
  role   = "roles/pubsub.publisher"
  member = each.value
}

# Pub/Sub's service agent forwards undeliverable messages to the dead-letter topics.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = {
    events        = google_pubsub_topic.events_dead_letter.id
    notifications = google_pubsub_topic.notifications_dead_letter.id
  }

  topic  = each.value
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = {
    events        = google_pubsub_subscription.events_example.id
    notifications = google_pubsub_subscription.notify_push.id
  }

  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
