# What each function is, in one table: its source folder, target, timeout, who may reach
# it, and which settings (contract section 4) and secrets it gets. Everything else
# (functions.tf, iam.tf, scheduler.tf) is generated from these maps, and
# tests/terraform/ holds them against the code.

locals {
  labels = merge(var.labels, { service = "whatsapp-handler", managed-by = "terraform" })

  # Archive (terraform/build_sources.py) -> folder under functions/.
  source_dirs = ["webhook", "user_api", "outbox_relay", "gdpr_cleanup", "notifier"]

  # The one function the internet reaches (Twilio), and the ones only Google services or
  # named service accounts reach.
  public_functions = {
    webhook = {
      source      = "webhook"
      entry_point = "webhook"
      description = "Twilio WhatsApp webhook: registration, OTP, conversation, tickets, claims."
      trigger     = "http-public"
      # Twilio gives up after 15 s; anything slower is already lost.
      timeout_seconds = 30
      memory          = "512Mi"
      cpu             = "1"
      ingress         = "ALLOW_ALL"
      env             = ["TWILIO_ACCOUNT_SID", "TWILIO_SMS_FROM", "TWILIO_WHATSAPP_FROM", "WEBHOOK_PUBLIC_URL", "STATUS_CALLBACK_URL", "TERMS_VERSION"]
      secrets         = ["TWILIO_AUTH_TOKEN", "OTP_PEPPER", "REDIS_URL"]
    }
  }

  internal_functions = {
    user_api = {
      source          = "user_api"
      entry_point     = "user_api"
      description     = "Internal user lookup for downstream services (RFC 4.1)."
      trigger         = "http-internal"
      timeout_seconds = 30
      memory          = "512Mi"
      cpu             = "1"
      # IAM is the lock (only var.user_api_invoker_members); the network is a second one.
      ingress = var.user_api_ingress
      env     = []
      secrets = []
    }
    outbox_relay = {
      source          = "outbox_relay"
      entry_point     = "outbox_relay"
      description     = "Publishes the transactional outbox to Pub/Sub; Cloud Scheduler, every minute."
      trigger         = "scheduler"
      timeout_seconds = 120
      memory          = "512Mi"
      cpu             = "1"
      ingress         = "ALLOW_INTERNAL_ONLY"
      env             = ["PUBSUB_TOPIC", "RELAY_LOOP_SECONDS"]
      secrets         = []
    }
    outbox_purge = {
      source          = "outbox_relay"
      entry_point     = "outbox_purge"
      description     = "Deletes published outbox events older than 7 days (RFC 7.1); daily."
      trigger         = "scheduler"
      timeout_seconds = 300
      memory          = "512Mi"
      cpu             = "1"
      ingress         = "ALLOW_INTERNAL_ONLY"
      env             = []
      secrets         = []
    }
    gdpr_cleanup = {
      source          = "gdpr_cleanup"
      entry_point     = "gdpr_cleanup"
      description     = "Anonymises users inactive for 180 days (RFC 7.1/7.2); daily at 03:00 UTC."
      trigger         = "scheduler"
      timeout_seconds = 540
      memory          = "512Mi"
      cpu             = "1"
      ingress         = "ALLOW_INTERNAL_ONLY"
      env             = []
      # The Redis keys naming a phone number are keyed hashes with the pepper.
      secrets = ["OTP_PEPPER", "REDIS_URL"]
    }
    notify = {
      source          = "notifier"
      entry_point     = "notify"
      description     = "Delivers downstream services' notification requests on WhatsApp (push from NOTIFY_TOPIC)."
      trigger         = "pubsub-push"
      timeout_seconds = 60
      memory          = "512Mi"
      cpu             = "1"
      ingress         = "ALLOW_INTERNAL_ONLY"
      env             = ["TWILIO_ACCOUNT_SID", "TWILIO_WHATSAPP_FROM", "NOTIFY_TOPIC", "STATUS_CALLBACK_URL"]
      secrets         = ["TWILIO_AUTH_TOKEN"]
    }
  }

  functions = merge(local.public_functions, local.internal_functions)

  # Cloud Scheduler jobs (RFC 7.1, contract section 3). Every time is UTC: "Etc/UTC"
  # never shifts, so the GDPR run is 03:00 UTC all year (04:00 London time in summer).
  schedules = {
    outbox_relay = {
      schedule    = "* * * * *"
      description = "Drain the outbox; each run keeps polling for RELAY_LOOP_SECONDS."
      # The next run starts a minute later anyway; a retry would only overlap it.
      retry_count = 0
    }
    outbox_purge = {
      schedule    = "30 4 * * *"
      description = "Delete published outbox events past retention (daily, after the GDPR run)."
      retry_count = 3
    }
    gdpr_cleanup = {
      schedule    = "0 3 * * *"
      description = "Anonymise users inactive for GDPR_INACTIVITY_DAYS (daily 03:00 UTC)."
      retry_count = 3
    }
  }
  schedule_time_zone = "Etc/UTC"
  # Scheduler waits this long for an answer beyond the function's own timeout: the cold
  # start (about 2-5 s here) happens before the function's clock starts.
  scheduler_deadline_slack_seconds = 30

  function_names = { for k, _ in local.functions : k => "${var.name_prefix}-${replace(k, "_", "-")}" }

  # Gen 2 functions answer on https://REGION-PROJECT.cloudfunctions.net/NAME as well as on
  # their run.app URL. The former is known before the function exists, which lets the
  # webhook be told the exact URL Twilio signs without a dependency cycle.
  cloudfunctions_url = { for k, name in local.function_names : k => "https://${var.region}-${var.project_id}.cloudfunctions.net/${name}" }
  webhook_public_url = coalesce(var.webhook_public_url, local.cloudfunctions_url["webhook"])

  # Contract section 4 settings, by name. Each function gets the ones it lists, plus the
  # database settings below.
  env_values = {
    TWILIO_ACCOUNT_SID   = var.twilio_account_sid
    TWILIO_SMS_FROM      = var.twilio_sms_from
    TWILIO_WHATSAPP_FROM = var.twilio_whatsapp_from
    WEBHOOK_PUBLIC_URL   = local.webhook_public_url
    # Twilio reports delivery of what we send to the webhook's /status path (signed the same way).
    STATUS_CALLBACK_URL = "${trimsuffix(local.webhook_public_url, "/")}/status"
    TERMS_VERSION       = var.terms_version
    PUBSUB_TOPIC        = google_pubsub_topic.events.name
    NOTIFY_TOPIC        = google_pubsub_topic.notifications.name
    RELAY_LOOP_SECONDS  = tostring(var.relay_loop_seconds)
  }

  # Every function reaches Cloud SQL through the connector with IAM auth (no DATABASE_URL,
  # no password): CLOUD_SQL_INSTANCE + DB_USER + DB_NAME, and its own pool size.
  function_env = {
    for k, f in local.functions : k => merge(
      {
        GOOGLE_CLOUD_PROJECT = var.project_id
        CLOUD_SQL_INSTANCE   = google_sql_database_instance.main.connection_name
        DB_NAME              = google_sql_database.main.name
        DB_USER              = local.db_iam_user[k]
        DB_POOL_SIZE         = tostring(var.function_scaling[k].pool_size)
        LOG_LEVEL            = var.log_level
      },
      { for name in f.env : name => local.env_values[name] },
    )
  }

  # Secret environment variables: name -> secret and the pinned version. Pinning (not
  # "latest") makes a new version roll every function that reads it, in the same apply.
  # The Twilio token's versions are added by the operator (secrets.tf), so its pin is the
  # version number they name: 1 after the first apply, then each rotation's.
  secrets = {
    TWILIO_AUTH_TOKEN = {
      secret_id = google_secret_manager_secret.twilio_auth_token.secret_id
      version   = tostring(var.twilio_auth_token_version)
    }
    OTP_PEPPER = {
      secret_id = google_secret_manager_secret.otp_pepper.secret_id
      version   = google_secret_manager_secret_version.otp_pepper.version
    }
    REDIS_URL = {
      secret_id = google_secret_manager_secret.redis_url.secret_id
      version   = google_secret_manager_secret_version.redis_url.version
    }
  }

  secret_grants = merge([
    for k, f in local.functions : { for s in f.secrets : "${k}/${s}" => { function = k, secret = s } }
  ]...)

  # Cloud SQL IAM database user of a service account: its email without the domain suffix.
  db_iam_user = { for k, sa in google_service_account.function : k => trimsuffix(sa.email, ".gserviceaccount.com") }

  # Connections the functions can open at most, against what the instance allows.
  function_connections = sum([for k, s in var.function_scaling : s.max_instances * s.pool_size])
}
