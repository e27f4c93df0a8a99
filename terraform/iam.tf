# One service account per function target, one for each caller (Cloud Scheduler, the
# notification push subscription), one that builds the functions and one that migrates.
# Each gets only the roles it needs, on the narrowest resource that takes them.

locals {
  function_sa_suffix = {
    webhook      = "webhook"
    user_api     = "user-api"
    outbox_relay = "relay"
    outbox_purge = "purge"
    gdpr_cleanup = "gdpr"
    notify       = "notify"
  }
}

resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = "${var.name_prefix}-${local.function_sa_suffix[each.key]}"
  display_name = "whatsapp-handler ${each.key} function"
  description  = "Runs the ${each.key} Cloud Function."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "whatsapp-handler Cloud Scheduler caller"
  description  = "Signs the OIDC tokens Cloud Scheduler sends to outbox_relay, outbox_purge and gdpr_cleanup."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "push" {
  account_id   = "${var.name_prefix}-push"
  display_name = "whatsapp-handler notification push"
  description  = "Signs the OIDC tokens the notification push subscription sends to notify."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "builder" {
  account_id   = "${var.name_prefix}-builder"
  display_name = "whatsapp-handler function builder"
  description  = "Cloud Build identity that turns the source archives into function images."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "migrator" {
  account_id   = "${var.name_prefix}-migrator"
  display_name = "whatsapp-handler migrations"
  description  = "Runs `whatsapp-handler migrate` in the migration job; owns the whatsapp_handler schema."

  depends_on = [google_project_service.this]
}

# --- database: connect through the Cloud SQL connector as an IAM database user ----------

locals {
  sql_clients = merge(
    { for k, sa in google_service_account.function : k => sa.member },
    { migrator = google_service_account.migrator.member },
  )
  sql_roles = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
  sql_grants = merge([
    for who, member in local.sql_clients : { for role in local.sql_roles : "${who}/${role}" => { member = member, role = role } }
  ]...)
}

resource "google_project_iam_member" "sql" {
  for_each = local.sql_grants

  project = var.project_id
  role    = each.value.role
  member  = each.value.member

  condition {
    title       = "only-${var.name_prefix}-instance"
    description = "Only the whatsapp-handler Cloud SQL instance."
    expression  = "resource.type != 'sqladmin.googleapis.com/Instance' || resource.name == 'projects/${var.project_id}/instances/${google_sql_database_instance.main.name}'"
  }
}

# --- the relay publishes events --------------------------------------------------------

resource "google_pubsub_topic_iam_member" "relay_publishes_events" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.function["outbox_relay"].member
}

# The relay's health check asks whether the topic exists.
resource "google_pubsub_topic_iam_member" "relay_views_events" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.viewer"
  member = google_service_account.function["outbox_relay"].member
}

# --- who may invoke which function ----------------------------------------------------

# The webhook is public: Twilio cannot present Google credentials. Its lock is the
# X-Twilio-Signature check against the auth token, and rate limits behind it.
resource "google_cloud_run_service_iam_member" "webhook_public" {
  location = var.region
  service  = google_cloudfunctions2_function.webhook.name
  role     = "roles/run.invoker"
  member   = "allUsers" #checkov:skip=CKV_GCP_102:Twilio must reach the webhook without Google credentials; every request is authenticated by its X-Twilio-Signature
}

resource "google_cloud_run_service_iam_member" "user_api" {
  for_each = toset(var.user_api_invoker_members)

  location = var.region
  service  = local.function["user_api"].name
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_service_iam_member" "scheduler" {
  for_each = local.schedules

  location = var.region
  service  = local.function[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_service_iam_member" "push_notify" {
  location = var.region
  service  = local.function["notify"].name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# Pub/Sub's service agent mints the push subscription's OIDC tokens, and moves messages
# to dead-letter topics (publish there, acknowledge on the source subscription).
locals {
  pubsub_service_agent = google_project_service_identity.pubsub.member
}

resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# --- building functions ---------------------------------------------------------------

resource "google_project_iam_member" "builder" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = google_service_account.builder.member
}

resource "google_storage_bucket_iam_member" "builder_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.builder.member
}

# --- the migration job ------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "migrator_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.migrator.member
}

# --- waiting for the grants ---------------------------------------------------------------

# IAM grants take effect across Google Cloud within about two minutes (sometimes longer).
# Deploying a function checks its account can read its secrets, and its build runs as the
# builder at once; the migration job mounts the sources bucket and logs in to Cloud SQL
# as the migrator. Right after the grants those can fail where a rerun would pass, so the
# functions and the migration wait here once. It waits again when the set of grants
# changes (a new function, secret or role), not on other applies. Grants only used at
# run time (Cloud Scheduler and the push subscription invoking, the Pub/Sub agent minting
# tokens) are not waited for: their callers retry.
resource "time_sleep" "iam_propagation" {
  create_duration = format("%ds", var.iam_propagation_seconds)

  triggers = {
    grants = join(",", sort(concat(
      keys(local.secret_grants),
      keys(local.sql_grants),
      ["builder", "migrator"],
    )))
  }

  depends_on = [
    google_secret_manager_secret_iam_member.function,
    google_project_iam_member.sql,
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_sources,
    google_storage_bucket_iam_member.migrator_reads_sources,
  ]
}
