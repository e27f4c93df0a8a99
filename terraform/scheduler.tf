# Cloud Scheduler calls the three scheduled functions with an OIDC token of its own
# service account, the only account allowed to invoke them (iam.tf). Schedules and the
# UTC time zone are in locals.tf; the attempt deadline is the function's timeout plus
# the cold-start slack, so Scheduler never gives up on a run that is still allowed to run.

resource "google_cloud_scheduler_job" "this" {
  for_each = local.schedules

  name             = local.function_names[each.key]
  region           = var.region
  description      = each.value.description
  schedule         = each.value.schedule
  time_zone        = local.schedule_time_zone
  attempt_deadline = "${local.functions[each.key].timeout_seconds + local.scheduler_deadline_slack_seconds}s"

  retry_config {
    retry_count          = each.value.retry_count
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
    max_doublings        = 3
  }

  http_target {
    http_method = "POST"
    uri         = local.function[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.function[each.key].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.scheduler]
}
