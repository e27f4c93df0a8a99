# Every input, with a description and a validation. Only project_id, the Twilio sender
# details and (on the first apply) the Twilio auth token have no default.

variable "project_id" {
  description = "Google Cloud project to deploy into (its id, not its number)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id: 6-30 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region for every regional resource (functions, Cloud SQL, Redis, scheduler, connector)."
  type        = string
  default     = "europe-west2"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west2."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, topics, service accounts, jobs)."
  type        = string
  default     = "whatsapp-handler"

  validation {
    # Service account ids are at most 30 characters: prefix + "-" + the longest suffix ("scheduler").
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.name_prefix))
    error_message = "name_prefix must be 2-16 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Extra labels put on every resource that takes labels."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels: keys and values must be lower-case letters, digits, '_' or '-' (keys start with a letter)."
  }
}

# --- Twilio --------------------------------------------------------------------------

variable "twilio_account_sid" {
  description = "Twilio Account SID (not a secret: it names the account; the auth token is the secret)."
  type        = string

  validation {
    condition     = can(regex("^AC[0-9a-f]{32}$", var.twilio_account_sid))
    error_message = "twilio_account_sid must look like AC followed by 32 hex digits."
  }
}

variable "twilio_sms_from" {
  description = "The SMS sender for OTP codes, in E.164 (e.g. +447700900999), or a Messaging Service SID (MG...)."
  type        = string

  validation {
    condition     = can(regex("^(\\+[1-9][0-9]{6,14}|MG[0-9a-f]{32})$", var.twilio_sms_from))
    error_message = "twilio_sms_from must be an E.164 number (+447700900999) or a Messaging Service SID (MG + 32 hex digits)."
  }
}

variable "twilio_whatsapp_from" {
  description = "Our WhatsApp sender, as Twilio writes it: whatsapp:+44..."
  type        = string

  validation {
    condition     = can(regex("^whatsapp:\\+[1-9][0-9]{6,14}$", var.twilio_whatsapp_from))
    error_message = "twilio_whatsapp_from must look like whatsapp:+447700900998."
  }
}

variable "twilio_auth_token" {
  description = <<-EOT
    Twilio auth token, only for the first apply into a fresh project: it becomes version 1
    of the token's secret. Ignored once the secret has a version, so leave it unset on
    every other apply; rotation adds versions with gcloud (docs/runbook.md). Ephemeral:
    never in the state, the plan or an output. Pass it as TF_VAR_twilio_auth_token, not on
    the command line.
  EOT
  type        = string
  default     = null
  nullable    = true
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = var.twilio_auth_token == null || can(regex("^[0-9a-f]{32}$", var.twilio_auth_token))
    error_message = "twilio_auth_token must be Twilio's 32 hex digit auth token."
  }
}

variable "twilio_auth_token_version" {
  description = "The Secret Manager version of the Twilio token the functions read (1 after the first apply). After `gcloud secrets versions add` of a new token, set it to the version gcloud printed: the apply rolls every function that uses it."
  type        = number
  default     = 1

  validation {
    condition     = var.twilio_auth_token_version >= 1 && floor(var.twilio_auth_token_version) == var.twilio_auth_token_version
    error_message = "twilio_auth_token_version must be a whole number >= 1."
  }
}

variable "otp_pepper_version" {
  description = "Bump to generate a new OTP pepper. Changes the hash of every phone number in Redis keys and invalidates codes in flight: only after a leak."
  type        = number
  default     = 1

  validation {
    condition     = var.otp_pepper_version >= 1 && floor(var.otp_pepper_version) == var.otp_pepper_version
    error_message = "otp_pepper_version must be a whole number >= 1."
  }
}

variable "webhook_public_url" {
  description = "The exact URL Twilio calls (signatures are computed over it). Default: the function's https://REGION-PROJECT.cloudfunctions.net/NAME URL. Set it when a custom domain or load balancer fronts the webhook."
  type        = string
  default     = null
  nullable    = true

  validation {
    condition     = var.webhook_public_url == null || can(regex("^https://[^\\s]+$", var.webhook_public_url))
    error_message = "webhook_public_url must be an https:// URL."
  }
}

# --- application settings --------------------------------------------------------------

variable "terms_version" {
  description = "TERMS_VERSION: the terms version users accept (at most 20 characters)."
  type        = string
  default     = "2025-11-30"

  validation {
    condition     = length(var.terms_version) > 0 && length(var.terms_version) <= 20
    error_message = "terms_version must be 1-20 characters (users.terms_version is VARCHAR(20))."
  }
}

variable "relay_loop_seconds" {
  description = "RELAY_LOOP_SECONDS: how long one outbox_relay run keeps polling. Must end well inside the relay's timeout (see function_timeouts)."
  type        = number
  default     = 50

  validation {
    condition     = var.relay_loop_seconds >= 0 && var.relay_loop_seconds <= 55
    error_message = "relay_loop_seconds must be 0-55: the scheduler starts a new run every minute."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of every function."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

# --- scaling: instances x pool size must fit Cloud SQL's max_connections ----------------

variable "function_scaling" {
  description = <<-EOT
    Per function target: max/min instances, requests served at once per instance
    (concurrency) and DB_POOL_SIZE. The sum over targets of max_instances x pool_size,
    plus db_reserved_connections, must stay within db_max_connections (checked at plan
    time; the arithmetic is in terraform/README.md).
  EOT
  type = map(object({
    max_instances = number
    min_instances = number
    concurrency   = number
    pool_size     = number
  }))
  default = {
    webhook      = { max_instances = 20, min_instances = 1, concurrency = 5, pool_size = 5 }
    user_api     = { max_instances = 10, min_instances = 0, concurrency = 4, pool_size = 4 }
    notify       = { max_instances = 5, min_instances = 0, concurrency = 4, pool_size = 4 }
    outbox_relay = { max_instances = 2, min_instances = 0, concurrency = 1, pool_size = 2 }
    outbox_purge = { max_instances = 1, min_instances = 0, concurrency = 1, pool_size = 1 }
    gdpr_cleanup = { max_instances = 1, min_instances = 0, concurrency = 1, pool_size = 2 }
  }

  validation {
    condition = (
      toset(keys(var.function_scaling)) == toset(["webhook", "user_api", "notify", "outbox_relay", "outbox_purge", "gdpr_cleanup"])
    )
    error_message = "function_scaling must have exactly the six targets: webhook, user_api, notify, outbox_relay, outbox_purge, gdpr_cleanup."
  }

  validation {
    condition = alltrue([
      for s in values(var.function_scaling) :
      s.max_instances >= 1 && s.min_instances >= 0 && s.min_instances <= s.max_instances &&
      s.concurrency >= 1 && s.concurrency <= 80 && s.pool_size >= 1 && s.pool_size <= 50
    ])
    error_message = "function_scaling: need 0 <= min_instances <= max_instances, max_instances >= 1, concurrency 1-80 and pool_size 1-50."
  }

  validation {
    # A request waiting for a pooled connection is time lost; more connections than
    # concurrent requests is connections nobody uses.
    condition     = alltrue([for s in values(var.function_scaling) : s.pool_size >= s.concurrency])
    error_message = "function_scaling: pool_size must be at least concurrency (one connection per request in flight)."
  }
}

# --- Cloud SQL --------------------------------------------------------------------------

variable "db_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-2-7680"

  validation {
    condition     = can(regex("^db-(custom-[0-9]+-[0-9]+|perf-optimized-N-[0-9]+|g1-small|f1-micro)$", var.db_tier))
    error_message = "db_tier must be a Cloud SQL tier such as db-custom-2-7680."
  }
}

variable "db_availability_type" {
  description = "REGIONAL (high availability, a standby in another zone) or ZONAL."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.db_availability_type)
    error_message = "db_availability_type must be REGIONAL or ZONAL."
  }
}

variable "db_disk_size_gb" {
  description = "Initial Cloud SQL disk size (it grows automatically). RFC 6.3 estimates about 130 MB of data."
  type        = number
  default     = 20

  validation {
    condition     = var.db_disk_size_gb >= 10 && var.db_disk_size_gb <= 1000
    error_message = "db_disk_size_gb must be 10-1000."
  }
}

variable "db_max_connections" {
  description = "PostgreSQL max_connections (a database flag)."
  type        = number
  default     = 200

  validation {
    condition     = var.db_max_connections >= 50 && var.db_max_connections <= 1000
    error_message = "db_max_connections must be 50-1000."
  }
}

variable "db_reserved_connections" {
  description = "Connections kept free of the functions: superuser-reserved (3), Cloud SQL's own agents, the migration job and operators."
  type        = number
  default     = 15

  validation {
    condition     = var.db_reserved_connections >= 5
    error_message = "db_reserved_connections must be at least 5 (Cloud SQL reserves 3 for superusers; migrations need 1)."
  }
}

variable "db_backup_retention_days" {
  description = "Daily backups kept (RFC 8.1: 30 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.db_backup_retention_days >= 7 && var.db_backup_retention_days <= 365
    error_message = "db_backup_retention_days must be 7-365."
  }
}

variable "db_pitr_days" {
  description = "Days of write-ahead log kept for point-in-time recovery (1-7)."
  type        = number
  default     = 7

  validation {
    condition     = var.db_pitr_days >= 1 && var.db_pitr_days <= 7
    error_message = "db_pitr_days must be 1-7 (Cloud SQL's limit for PostgreSQL)."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to destroy the Cloud SQL instance (set false only to tear down a test project)."
  type        = bool
  default     = true
}

# --- Redis ------------------------------------------------------------------------------

variable "redis_tier" {
  description = "Memorystore tier: STANDARD_HA (replica, automatic failover) or BASIC."
  type        = string
  default     = "STANDARD_HA"

  validation {
    condition     = contains(["STANDARD_HA", "BASIC"], var.redis_tier)
    error_message = "redis_tier must be STANDARD_HA or BASIC."
  }
}

variable "redis_memory_size_gb" {
  description = "Memorystore size. Conversation state is about 1 KB per active user (24 h TTL)."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_memory_size_gb >= 1 && var.redis_memory_size_gb <= 300
    error_message = "redis_memory_size_gb must be 1-300."
  }
}

# --- network ------------------------------------------------------------------------------

variable "connector_cidr" {
  description = "A free /28 in the VPC for the Serverless VPC Access connector."
  type        = string
  default     = "10.8.0.0/28"

  validation {
    condition     = can(cidrhost(var.connector_cidr, 0)) && endswith(var.connector_cidr, "/28")
    error_message = "connector_cidr must be an IPv4 /28, e.g. 10.8.0.0/28."
  }
}

variable "private_services_cidr" {
  description = "Range reserved for private services access: Cloud SQL's and Memorystore's private IPs come from it. Must not overlap the subnet (10.10.0.0/24) or connector_cidr."
  type        = string
  default     = "10.16.0.0/20"

  validation {
    condition     = can(cidrhost(var.private_services_cidr, 0)) && tonumber(split("/", var.private_services_cidr)[1]) <= 24
    error_message = "private_services_cidr must be an IPv4 range of /24 or larger, e.g. 10.16.0.0/20."
  }
}

# --- who may call us ----------------------------------------------------------------------

variable "user_api_invoker_members" {
  description = "The downstream services' accounts that may call user_api (journey-matcher, delay-tracker, claim-dispatcher), as serviceAccount:... members."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.user_api_invoker_members : can(regex("^serviceAccount:[^@\\s]+@[^@\\s]+$", m))])
    error_message = "user_api_invoker_members must be serviceAccount:NAME@PROJECT.iam.gserviceaccount.com members (no users, groups or allUsers)."
  }
}

variable "user_api_ingress" {
  description = "Network ingress of user_api. ALLOW_INTERNAL_ONLY admits callers in this project's VPC (Cloud Run/Functions with VPC egress) or VPC-SC perimeter; set ALLOW_ALL when the downstream services run elsewhere (IAM still admits only user_api_invoker_members)."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"], var.user_api_ingress)
    error_message = "user_api_ingress must be ALLOW_INTERNAL_ONLY, ALLOW_INTERNAL_AND_GCLB or ALLOW_ALL."
  }
}

variable "notification_publisher_members" {
  description = "The downstream services' accounts that may publish notification requests to NOTIFY_TOPIC, as serviceAccount:... members."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.notification_publisher_members : can(regex("^serviceAccount:[^@\\s]+@[^@\\s]+$", m))])
    error_message = "notification_publisher_members must be serviceAccount:... members (no users, groups or allUsers)."
  }
}

# --- deployment ---------------------------------------------------------------------------

variable "run_migrations_on_apply" {
  description = "Run `whatsapp-handler migrate up` (the migration job, via gcloud) whenever the code changes, before the functions are updated. Needs gcloud where terraform runs."
  type        = bool
  default     = true
}

variable "iam_propagation_seconds" {
  description = "How long the first apply (and one that adds grants) waits for new IAM grants to propagate before the functions deploy and the migration job runs."
  type        = number
  default     = 120

  validation {
    condition     = var.iam_propagation_seconds >= 0 && var.iam_propagation_seconds <= 600
    error_message = "iam_propagation_seconds must be 0-600."
  }
}

variable "migrate_image" {
  description = "Container image of the migration job: a Python 3.12 image with pip (the job installs the project's migrate archive into it)."
  type        = string
  default     = "mirror.gcr.io/library/python:3.12-slim"

  validation {
    condition     = can(regex("^[a-z0-9.-]+(/[a-z0-9._-]+)+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.migrate_image))
    error_message = "migrate_image must be a full image reference with a tag or digest."
  }
}

variable "cloud_sql_proxy_version" {
  description = "Cloud SQL Auth Proxy release the migration job downloads (v2.x)."
  type        = string
  default     = "v2.14.3"

  validation {
    condition     = can(regex("^v2\\.[0-9]+\\.[0-9]+$", var.cloud_sql_proxy_version))
    error_message = "cloud_sql_proxy_version must look like v2.14.3."
  }
}

# --- alerts -------------------------------------------------------------------------------

variable "critical_notification_channels" {
  description = "Monitoring notification channel ids that page on-call (RFC 8.3 critical alerts)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.critical_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "critical_notification_channels must be projects/PROJECT/notificationChannels/ID."
  }
}

variable "warning_notification_channels" {
  description = "Monitoring notification channel ids for warnings (RFC 8.3: Slack)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.warning_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "warning_notification_channels must be projects/PROJECT/notificationChannels/ID."
  }
}
