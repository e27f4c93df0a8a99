"""terraform/ held against the code and the contract, without a provider or a network.

Parses the HCL with python-hcl2 and checks what `terraform plan` cannot here: every
target exists in its source with the right decorator, every setting the code needs in
production is set, secrets come from Secret Manager only, the schedules are the RFC's,
nobody but Twilio reaches a function anonymously, the connection budget adds up, and the
RFC 8.2/8.3 metrics and alerts are there with their thresholds.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared.settings import Secret, Settings
from tests.terraform.hcl import FUNCTION_TARGETS, REPO, build_script, load, one

# What each target needs in production beyond the database (contract sections 3, 4, 6a).
CONTRACT_SETTINGS = {
    "webhook": {
        "REDIS_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_SMS_FROM",
        "WEBHOOK_PUBLIC_URL",
        "OTP_PEPPER",
        "TERMS_VERSION",
        "STATUS_CALLBACK_URL",  # validates Twilio's delivery reports on /status
    },
    "user_api": set(),
    "outbox_relay": {"GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC", "RELAY_LOOP_SECONDS"},
    "outbox_purge": set(),
    "gdpr_cleanup": {"REDIS_URL", "OTP_PEPPER"},
    "notify": {
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_WHATSAPP_FROM",
        "NOTIFY_TOPIC",
        "STATUS_CALLBACK_URL",  # where Twilio reports failed deliveries
    },
}
DATABASE_SETTINGS = {"CLOUD_SQL_INSTANCE", "DB_USER", "DB_NAME"}
SECRET_NAMES = {"TWILIO_AUTH_TOKEN", "OTP_PEPPER", "REDIS_URL"}
# Read by functions-framework itself, not by our Settings (none set today).
FRAMEWORK_SETTINGS: set[str] = set()

RFC_METRICS = {
    "whatsapp_user_registrations_total": "status",
    "whatsapp_otp_sent_total": "status",
    "whatsapp_otp_verified_total": "status",
    "whatsapp_db_query_duration_seconds": "query",
    "whatsapp_outbox_events_created_total": "event_type",
    "whatsapp_outbox_events_published_total": "event_type",
    "whatsapp_outbox_publish_lag_seconds": "event_type",
}


@pytest.fixture(scope="module")
def tf() -> Any:
    return load()


def _main_py(target: str) -> Path:
    return REPO / "functions" / FUNCTION_TARGETS[target] / "main.py"


def _tree(target: str) -> ast.Module:
    path = _main_py(target)
    if not path.is_file():
        pytest.skip(f"{path.relative_to(REPO)} is not written yet")
    return ast.parse(path.read_text(encoding="utf-8"))


def _string_args(tree: ast.AST, function_names: set[str]) -> set[str]:
    """Literal string arguments of calls to load_settings(...) / x.require(...)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func
        name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
        if name in function_names:
            found.update(
                arg.value.upper()
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            )
    return found


def _shared_modules_imported(tree: ast.Module) -> list[Path]:
    """Source files of the shared.* modules a module imports, transitively."""
    seen: dict[Path, None] = {}
    pending = [tree]
    while pending:
        node_tree = pending.pop()
        for node in ast.walk(node_tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if not name.startswith("shared"):
                    continue
                base = REPO / Path(*name.split("."))
                for path in (base.with_suffix(".py"), base / "__init__.py"):
                    if path.is_file() and path not in seen:
                        seen[path] = None
                        pending.append(ast.parse(path.read_text(encoding="utf-8")))
    return list(seen)


def _provided(tf: Any, target: str) -> tuple[set[str], set[str]]:
    """(plain environment variable names, secret environment variable names)."""
    spec = _function_table(tf)[target]
    return _function_env_base(tf) | set(spec["env"]), set(spec["secrets"])


def _function_env_base(tf: Any) -> set[str]:
    """Names in the first map of local.function_env's merge(...): given to every function."""
    expression = tf.locals["function_env"]
    first_map = re.search(r"merge\(\{(.*?)\}", expression, re.S)
    assert first_map, expression
    return set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", first_map.group(1)))


def _function_table(tf: Any) -> dict[str, dict[str, Any]]:
    return {**tf.locals["public_functions"], **tf.locals["internal_functions"]}


# --- targets and sources -------------------------------------------------------------


def test_the_six_contract_targets_are_deployed_from_their_folders(tf: Any) -> None:
    table = _function_table(tf)

    assert set(table) == set(FUNCTION_TARGETS)
    assert set(tf.locals["public_functions"]) == {"webhook"}
    assert "${merge(local.public_functions, local.internal_functions)}" == tf.locals["functions"]
    for target, spec in table.items():
        assert spec["entry_point"] == target
        assert spec["source"] == FUNCTION_TARGETS[target]
    assert set(tf.locals["source_dirs"]) == set(FUNCTION_TARGETS.values())
    assert set(build_script().FUNCTION_DIRS.values()) == set(tf.locals["source_dirs"])


@pytest.mark.parametrize("target", sorted(FUNCTION_TARGETS))
def test_entry_point_is_defined_in_its_main_py_with_the_right_signature(target: str) -> None:
    tree = _tree(target)
    definitions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }

    assert target in definitions, f"{_main_py(target)} does not define {target}()"
    decorators = {ast.unparse(d) for d in definitions[target].decorator_list}
    # notify receives Pub/Sub pushes that functions-framework turns into CloudEvents.
    expected = (
        "functions_framework.cloud_event" if target == "notify" else "functions_framework.http"
    )
    assert expected in decorators


def test_both_function_blocks_have_the_same_body_apart_from_ingress(tf: Any) -> None:
    functions = tf.resources["google_cloudfunctions2_function"]
    webhook = dict(functions["webhook"])
    internal = dict(functions["internal"])

    assert internal.pop("for_each") == "${local.internal_functions}"
    rendered = json.dumps(webhook, sort_keys=True)
    rendered = rendered.replace('local.functions[\\"webhook\\"]', "each.value")
    rendered = rendered.replace('[\\"webhook\\"]', "[each.key]")
    assert json.loads(rendered) == internal
    assert one(one(webhook["build_config"])).get("runtime") == "python312"


# --- settings and secrets ------------------------------------------------------------------


@pytest.mark.parametrize("target", sorted(FUNCTION_TARGETS))
def test_every_setting_the_target_needs_in_production_is_set(tf: Any, target: str) -> None:
    env, secrets = _provided(tf, target)
    needed = CONTRACT_SETTINGS[target] | DATABASE_SETTINGS
    path = _main_py(target)
    if path.is_file():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # What main.py and every shared module it reaches require (settings.require(...)).
        needed |= _string_args(tree, {"load_settings", "require"})
        for module in _shared_modules_imported(tree):
            if module.name != "settings.py":
                needed |= _string_args(
                    ast.parse(module.read_text(encoding="utf-8")), {"load_settings", "require"}
                )
        source = path.read_text(encoding="utf-8")
        if "redis_client" in source:
            needed.add("REDIS_URL")
        if "TwilioMessages" in source:
            needed |= {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"}

    missing = needed - env - secrets
    assert missing == set(), f"{target} needs {sorted(missing)} but Terraform does not set them"
    assert "DATABASE_URL" not in env, "production uses IAM auth through the connector"


def test_every_contract_setting_reaches_some_function(tf: Any) -> None:
    provided: set[str] = set()
    for target in FUNCTION_TARGETS:
        env, secrets = _provided(tf, target)
        provided |= env | secrets

    assert {
        "REDIS_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_SMS_FROM",
        "TWILIO_WHATSAPP_FROM",
        "WEBHOOK_PUBLIC_URL",
        "OTP_PEPPER",
        "GOOGLE_CLOUD_PROJECT",
        "PUBSUB_TOPIC",
        "NOTIFY_TOPIC",
        "TERMS_VERSION",
        "RELAY_LOOP_SECONDS",
    } | DATABASE_SETTINGS <= provided


def test_every_variable_terraform_sets_is_a_setting_the_code_reads(tf: Any) -> None:
    fields = {name.upper() for name in Settings.field_names()}
    named = set(tf.locals["env_values"]) | _function_env_base(tf) | set(tf.locals["secrets"])

    assert named - fields - FRAMEWORK_SETTINGS == set()


def test_secrets_come_from_secret_manager_only(tf: Any) -> None:
    secret_fields = {
        field.name.upper()
        for field in msgspec.structs.fields(Settings)
        if Secret in getattr(field.type, "__args__", (field.type,))
    }
    table = _function_table(tf)

    assert secret_fields <= SECRET_NAMES
    assert set(tf.locals["secrets"]) == SECRET_NAMES
    for target, spec in table.items():
        assert not SECRET_NAMES & set(spec["env"]), target
        assert set(spec["secrets"]) <= SECRET_NAMES
    assert not SECRET_NAMES & set(tf.locals["env_values"])
    assert not SECRET_NAMES & _function_env_base(tf)
    for name, ref in tf.locals["secrets"].items():
        resource = ref["secret_id"].removeprefix("${").split(".")[1]
        assert ref["secret_id"] == f"${{google_secret_manager_secret.{resource}.secret_id}}"
        # Pinned: a new version rolls the functions in the same apply. The Twilio token's
        # versions are the operator's (test_first_apply.py), pinned by number.
        pinned = (
            "${tostring(var.twilio_auth_token_version)}"
            if name == "TWILIO_AUTH_TOKEN"
            else f"${{google_secret_manager_secret_version.{resource}.version}}"
        )
        assert ref["version"] == pinned
    for block in tf.resources["google_cloudfunctions2_function"].values():
        service = one(block["service_config"])
        dynamic = one(service["dynamic"])["secret_environment_variables"]
        content = one(dynamic["content"])
        assert "local.secrets[secret_environment_variables.value].secret_id" in content["secret"]
        assert "local.secrets[secret_environment_variables.value].version" in content["version"]


def test_secret_values_never_reach_the_state_or_an_output(tf: Any) -> None:
    versions = tf.resources["google_secret_manager_secret_version"]
    token = tf.variables["twilio_auth_token"]

    assert token["sensitive"] is True and token["ephemeral"] is True
    # The token only seeds the secret, through a provisioner's environment (never state).
    assert "twilio_auth_token" not in versions
    seed = one(tf.resource("terraform_data", "twilio_auth_token_first_version")["provisioner"])
    assert "var.twilio_auth_token" in json.dumps(seed["local-exec"]["environment"])
    assert versions["otp_pepper"]["secret_data_wo"] == (
        "${ephemeral.random_password.otp_pepper.result}"
    )
    outputs = json.dumps(tf.outputs)
    for forbidden in ("secret", "auth_string", "redis_url", "twilio_auth_token", "password"):
        assert forbidden not in outputs


def test_each_function_reads_only_the_secrets_it_lists(tf: Any) -> None:
    grants = tf.resources["google_secret_manager_secret_iam_member"]

    assert set(grants) == {"function"}
    assert grants["function"]["for_each"] == "${local.secret_grants}"
    assert grants["function"]["role"] == "roles/secretmanager.secretAccessor"
    assert "google_service_account.function[each.value.function]" in grants["function"]["member"]


# --- schedules -----------------------------------------------------------------------


def test_schedules_are_the_rfcs_in_utc(tf: Any) -> None:
    schedules = tf.locals["schedules"]
    job = tf.resource("google_cloud_scheduler_job", "this")

    assert set(schedules) == {"outbox_relay", "outbox_purge", "gdpr_cleanup"}
    assert schedules["outbox_relay"]["schedule"] == "* * * * *"
    assert schedules["gdpr_cleanup"]["schedule"] == "0 3 * * *"
    minute, hour, *rest = schedules["outbox_purge"]["schedule"].split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"], "daily"
    assert tf.locals["schedule_time_zone"] == "Etc/UTC"
    assert job["time_zone"] == "${local.schedule_time_zone}"
    assert job["schedule"] == "${each.value.schedule}"


def test_attempt_deadlines_cover_the_functions_timeouts(tf: Any) -> None:
    job = tf.resource("google_cloud_scheduler_job", "this")
    slack = tf.locals["scheduler_deadline_slack_seconds"]
    table = _function_table(tf)

    assert job["attempt_deadline"] == (
        "${local.functions[each.key].timeout_seconds + local.scheduler_deadline_slack_seconds}s"
    )
    for target in tf.locals["schedules"]:
        deadline = table[target]["timeout_seconds"] + slack
        assert (
            table[target]["timeout_seconds"]
            < deadline
            <= min(table[target]["timeout_seconds"] + 60, 1800)
        )
    # One relay run (RELAY_LOOP_SECONDS plus a publish timeout) ends inside its timeout.
    loop_max = 55
    assert (
        "var.relay_loop_seconds <= 55"
        in tf.variables["relay_loop_seconds"]["validation"][0]["condition"]
    )
    assert loop_max + 10 + 30 <= table["outbox_relay"]["timeout_seconds"]


def test_scheduler_calls_with_an_oidc_token_of_its_own_account(tf: Any) -> None:
    target = one(tf.resource("google_cloud_scheduler_job", "this")["http_target"])
    token = one(target["oidc_token"])

    assert target["http_method"] == "POST"
    assert token["service_account_email"] == "${google_service_account.scheduler.email}"
    assert (
        token["audience"] == target["uri"] == ("${local.function[each.key].service_config[0].uri}")
    )


# --- access --------------------------------------------------------------------------


def _iam_bindings(tf: Any) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for kind, blocks in tf.resources.items():
        if kind.endswith(("_iam_member", "_iam_binding", "_iam_policy")):
            found.extend((kind, name, body) for name, body in blocks.items())
    return found


def test_no_one_but_twilio_reaches_a_function_anonymously(tf: Any) -> None:
    public = [
        (kind, name, body)
        for kind, name, body in _iam_bindings(tf)
        if re.search(r"allUsers|allAuthenticatedUsers", json.dumps(body))
    ]

    assert [(kind, name) for kind, name, _ in public] == [
        ("google_cloud_run_service_iam_member", "webhook_public")
    ]
    assert public[0][2]["service"] == "${google_cloudfunctions2_function.webhook.name}"
    assert public[0][2]["role"] == "roles/run.invoker"
    assert len(re.findall(r'=\s*"all(Authenticated)?Users"', tf.all_text())) == 1


def test_only_named_service_accounts_invoke_the_other_functions(tf: Any) -> None:
    invokers = tf.resources["google_cloud_run_service_iam_member"]
    table = _function_table(tf)

    assert set(invokers) == {"webhook_public", "user_api", "scheduler", "push_notify"}
    assert invokers["user_api"]["member"] == "${each.value}"
    assert invokers["user_api"]["for_each"] == "${toset(var.user_api_invoker_members)}"
    assert invokers["scheduler"]["member"] == "${google_service_account.scheduler.member}"
    assert invokers["push_notify"]["member"] == "${google_service_account.push.member}"
    condition = tf.variables["user_api_invoker_members"]["validation"][0]["condition"]
    assert "^serviceAccount:" in condition
    for target in ("outbox_relay", "outbox_purge", "gdpr_cleanup", "notify"):
        assert table[target]["ingress"] == "ALLOW_INTERNAL_ONLY", target
    assert tf.variables["user_api_ingress"]["default"] == "ALLOW_INTERNAL_ONLY"


# --- capacity ------------------------------------------------------------------------


def test_instances_times_pool_size_fits_max_connections(tf: Any) -> None:
    scaling = tf.variables["function_scaling"]["default"]
    max_connections = tf.variables["db_max_connections"]["default"]
    reserved = tf.variables["db_reserved_connections"]["default"]
    functions = sum(s["max_instances"] * s["pool_size"] for s in scaling.values())
    instance = tf.resource("google_sql_database_instance", "main")
    flags = {f["name"]: f["value"] for f in one(instance["settings"])["database_flags"]}
    precondition = one(one(instance["lifecycle"])["precondition"])
    readme = (REPO / "terraform" / "README.md").read_text(encoding="utf-8")

    assert set(scaling) == set(FUNCTION_TARGETS)
    assert functions + reserved <= max_connections
    assert all(s["pool_size"] >= s["concurrency"] for s in scaling.values())
    assert flags["max_connections"] == "${tostring(var.db_max_connections)}"
    assert "local.function_connections + var.db_reserved_connections" in precondition["condition"]
    assert "DB_POOL_SIZE = tostring(var.function_scaling[k].pool_size)" in tf.locals["function_env"]
    # The README's arithmetic is the defaults'.
    assert f"| **total** | | | | **{functions}** |" in readme
    for target, s in scaling.items():
        row = (
            f"| `{target}` | {s['max_instances']} | {s['concurrency']} | {s['pool_size']} "
            f"| {s['max_instances'] * s['pool_size']} |"
        )
        assert row in readme


# --- data ---------------------------------------------------------------------------


def test_cloud_sql_is_postgres_15_private_tls_iam_with_backups_and_pitr(tf: Any) -> None:
    instance = tf.resource("google_sql_database_instance", "main")
    settings = one(instance["settings"])
    ip = one(settings["ip_configuration"])
    backups = one(settings["backup_configuration"])
    flags = {f["name"]: f["value"] for f in settings["database_flags"]}

    assert instance["database_version"] == "POSTGRES_15"
    assert flags["cloudsql.iam_authentication"] == "on"
    assert ip["ipv4_enabled"] is False
    assert ip["private_network"] == "${google_compute_network.main.id}"
    assert ip["ssl_mode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    assert backups["enabled"] is True and backups["point_in_time_recovery_enabled"] is True
    assert tf.variables["db_backup_retention_days"]["default"] == 30  # RFC 8.1
    users = tf.resources["google_sql_user"]
    assert {u["type"] for u in users.values()} == {"CLOUD_IAM_SERVICE_ACCOUNT"}


def test_redis_has_auth_and_tls_and_its_url_is_one_the_code_accepts(tf: Any) -> None:
    import redis

    instance = tf.resource("google_redis_instance", "main")
    expression = tf.locals["redis_url"]
    template = re.search(r'format\(\s*"([^"]+)"', expression)

    assert instance["auth_enabled"] is True
    assert instance["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
    assert template, expression
    from urllib.parse import quote_plus

    pem = "-----BEGIN CERTIFICATE-----\nMIIB+x/y==\n-----END CERTIFICATE-----\n"
    url = template.group(1) % (quote_plus("a1b2-c3/d+"), "10.0.0.3", 6378, quote_plus(pem))
    settings = Settings(redis_url=url, database_url="postgresql://u@h/d")
    connection = redis.Redis.from_url(settings.redis_url).connection_pool.make_connection()

    assert type(connection).__name__ == "SSLConnection"
    assert connection.ca_data == pem and connection.password == "a1b2-c3/d+"
    assert connection.port == 6378


def test_functions_reach_private_ips_through_the_connector(tf: Any) -> None:
    for block in tf.resources["google_cloudfunctions2_function"].values():
        service = one(block["service_config"])
        assert service["vpc_connector"] == "${google_vpc_access_connector.main.id}"
        assert service["vpc_connector_egress_settings"] == "PRIVATE_RANGES_ONLY"


# --- events --------------------------------------------------------------------------


def test_events_topic_has_an_ordered_example_subscription_with_dead_letters(tf: Any) -> None:
    topics = tf.resources["google_pubsub_topic"]
    subscription = tf.resource("google_pubsub_subscription", "events_example")
    dead_letter = one(subscription["dead_letter_policy"])

    assert topics["events"]["name"] == "${var.name_prefix}-events"
    assert tf.variables["name_prefix"]["default"] == "whatsapp-handler"  # PUBSUB_TOPIC default
    assert subscription["enable_message_ordering"] is True
    assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.events_dead_letter.id}"
    assert 5 <= dead_letter["max_delivery_attempts"] <= 100
    assert one(subscription["retry_policy"])["minimum_backoff"] == "10s"


def test_notifications_reach_notify_with_retries_dead_letters_and_publishers(tf: Any) -> None:
    push = tf.resource("google_pubsub_subscription", "notify_push")
    config = one(push["push_config"])
    dead_letter = one(push["dead_letter_policy"])
    publishers = tf.resource("google_pubsub_topic_iam_member", "notification_publishers")
    agent_grants = tf.resource("google_pubsub_topic_iam_member", "dead_letter_publisher")

    assert push["topic"] == "${google_pubsub_topic.notifications.id}"
    assert config["push_endpoint"] == '${local.function["notify"].service_config[0].uri}'
    assert one(config["oidc_token"])["service_account_email"] == (
        "${google_service_account.push.email}"
    )
    assert dead_letter["dead_letter_topic"] == (
        "${google_pubsub_topic.notifications_dead_letter.id}"
    )
    assert one(push["retry_policy"])["maximum_backoff"] == "600s"
    assert push["ack_deadline_seconds"] == '${local.functions["notify"].timeout_seconds}'
    assert publishers["for_each"] == "${toset(var.notification_publisher_members)}"
    assert publishers["role"] == "roles/pubsub.publisher"
    assert agent_grants["member"] == "${local.pubsub_service_agent}"


def test_relay_may_publish_only_to_the_events_topic(tf: Any) -> None:
    grant = tf.resource("google_pubsub_topic_iam_member", "relay_publishes_events")

    assert grant["topic"] == "${google_pubsub_topic.events.id}"
    assert grant["role"] == "roles/pubsub.publisher"
    assert '"outbox_relay"' in grant["member"]


# --- observability ----------------------------------------------------------------------


def test_rfc_metrics_are_log_based_metrics_on_the_fields_the_code_logs(tf: Any) -> None:
    metrics = tf.locals["log_metrics"]
    block = tf.resource("google_logging_metric", "rfc")
    code = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("shared", "functions")
        for path in (REPO / folder).rglob("*.py")
    )

    assert set(RFC_METRICS) <= set(metrics)
    assert '"logging_googleapis_com:user_${name}"' in tf.locals["promql"]
    for name, label in RFC_METRICS.items():
        assert set(metrics[name]["labels"]) == {label}, name
    assert block["name"] == "${each.key}"
    assert "jsonPayload.${each.key}:*" in block["filter"]
    assert block["value_extractor"] == "EXTRACT(jsonPayload.${each.key})"
    assert "EXTRACT(jsonPayload.${label})" in block["label_extractors"]
    # Logged as a field: `name=value` in a log call (or a "name" key in a dict of fields).
    missing = sorted(name for name in metrics if not re.search(rf'\b{name}\s*=|"{name}"', code))
    if missing:
        # Visible in the summary (-ra) until the code emits them; then this passes.
        pytest.xfail(f"no code logs these metric fields yet: {', '.join(missing)}")


def test_rfc_alerts_with_their_thresholds(tf: Any) -> None:
    alerts = tf.locals["alerts"]
    policy = tf.resource("google_monitoring_alert_policy", "rfc")

    def alert(key: str) -> tuple[str, str, str]:
        return alerts[key]["severity"], alerts[key]["query"], alerts[key]["duration"]

    severity, query, duration = alert("db_query_p95")
    assert (severity, duration) == ("CRITICAL", "300s")
    assert "histogram_quantile(0.95" in query and "whatsapp_db_query_duration_seconds" in query
    assert query.endswith("> 1.0")
    severity, query, duration = alert("outbox_publish_lag_p95")
    assert (severity, duration) == ("CRITICAL", "600s")
    assert "whatsapp_outbox_publish_lag_seconds" in query and query.endswith("> 60")
    severity, query, duration = alert("otp_failure_ratio")
    assert (severity, duration) == ("CRITICAL", "900s")
    assert 'whatsapp_otp_verified_total}_sum{status="failure"}' in query
    assert "whatsapp_otp_sent_total" in query and query.endswith("> 0.5")
    severity, query, duration = alert("registration_failures")
    assert (severity, duration) == ("WARNING", "0s")
    assert "[1h]" in query and query.endswith("> 10")
    severity, query, duration = alert("outbox_backlog")
    assert (severity, duration) == ("WARNING", "1800s")
    assert "whatsapp_outbox_events_created_total" in query
    assert "whatsapp_outbox_events_published_total" in query and query.endswith("> 100")
    assert "var.critical_notification_channels" in policy["notification_channels"]
    assert "var.warning_notification_channels" in policy["notification_channels"]
    condition = one(policy["conditions"])
    assert one(condition["condition_prometheus_query_language"])["query"] == "${each.value.query}"


def test_every_alert_points_at_a_runbook_section() -> None:
    runbook = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
    anchors = set(re.findall(r"docs/runbook\.md#([a-z0-9-]+)", load().all_text()))
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }

    assert anchors, "alerts link to the runbook"
    assert anchors <= headings


# --- deployment ---------------------------------------------------------------------------


def test_migrations_run_before_the_functions_change(tf: Any) -> None:
    job = tf.resource("google_cloud_run_v2_job", "migrate")
    container = one(one(one(job["template"])["template"])["containers"])
    migrate = tf.resource("terraform_data", "migrate")
    script = tf.locals["migrate_script"]

    assert container["args"] == ["up"]
    assert 'whatsapp-handler migrate "$@"' in script
    assert '"$MIGRATE_ARCHIVE[migrate]"' in script  # Alembic and SQLAlchemy are an extra
    assert "--auto-iam-authn" in script and "--private-ip" in script
    assert "gcloud run jobs execute" in json.dumps(migrate)
    assert "--wait" in json.dumps(migrate)
    for block in tf.resources["google_cloudfunctions2_function"].values():
        assert "${terraform_data.migrate}" in block["depends_on"]
    grants = tf.locals["grants_sql"]
    assert "local.db_iam_user" in grants and "SELECT, INSERT, UPDATE, DELETE" in grants


def test_sources_are_built_by_the_script_on_plan(tf: Any) -> None:
    program = tf.data["external"]["sources"]["program"]
    objects = tf.resource("google_storage_bucket_object", "source")

    assert program[0] == "python3" and program[1].endswith("/build_sources.py")
    assert "--terraform" in program
    assert "_sha256" in objects["name"]


def test_every_variable_is_described_and_validated(tf: Any) -> None:
    for name, variable in tf.variables.items():
        assert variable.get("description"), name
        if variable.get("type") != "${bool}" and variable.get("type") != "bool":
            assert variable.get("validation"), f"variable {name} has no validation"


def test_outputs_give_the_urls_ops_paste_elsewhere(tf: Any) -> None:
    assert tf.outputs["webhook_url"]["value"] == "${local.webhook_public_url}"
    assert "user_api" in tf.outputs["user_api_url"]["value"]
    assert "cloudfunctions.net" in tf.locals["cloudfunctions_url"]
