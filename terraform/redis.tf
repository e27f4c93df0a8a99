# Memorystore for Redis (conversation state, rate limits, de-duplication): private
# service access, AUTH on, TLS in transit. It holds nothing that the database does not
# (RFC 2.2), so it needs no persistence.

resource "google_redis_instance" "main" {
  name               = var.name_prefix
  region             = var.region
  tier               = var.redis_tier
  memory_size_gb     = var.redis_memory_size_gb
  redis_version      = "REDIS_7_2"
  authorized_network = google_compute_network.main.id
  connect_mode       = "PRIVATE_SERVICE_ACCESS"
  labels             = local.labels

  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  redis_configs = {
    # Conversation keys carry TTLs; evict those first rather than refuse writes.
    maxmemory-policy = "volatile-lru"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 4
        minutes = 30
      }
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

locals {
  # rediss:// with the AUTH string, and the instance's own CA passed inline (redis-py's
  # ssl_ca_data), so the client trusts this server and nothing else. Memorystore's
  # certificate names no host, so the hostname check is off; the pinned CA is the check.
  redis_url = format(
    "rediss://:%s@%s:%d/0?ssl_cert_reqs=required&ssl_check_hostname=false&ssl_ca_data=%s",
    urlencode(google_redis_instance.main.auth_string),
    google_redis_instance.main.host,
    google_redis_instance.main.port,
    urlencode(join("", [for c in google_redis_instance.main.server_ca_certs : c.cert])),
  )
}
