"""terraform/ on an empty project: the first `terraform apply` needs no rerun, and every
later plan works without a secret passed again (issue 22).

Without a provider here, the checks read the HCL (python-hcl2) and follow its references:
a resource is ordered after another when it names it (an attribute or `depends_on`),
directly or through locals and other resources, which is how Terraform orders them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from functools import cache
from typing import Any

import pytest

from tests.terraform.hcl import Terraform, load, one

APIS = "google_project_service.this"
RESOURCE_REF = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z0-9_]+)\b")
LOCAL_REF = re.compile(r"\blocal\.([a-z0-9_]+)\b")
# Provider-side conditions of a lifecycle Delete rule that only ever match archived
# (noncurrent) object versions, never the live archive a function or the job points at.
NONCURRENT_ONLY = {"days_since_noncurrent_time", "num_newer_versions", "noncurrent_time_before"}


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return load()


def _text(value: Any) -> str:
    return json.dumps(value)


def _direct(tf: Terraform, text: str) -> set[str]:
    """Resources named in an expression text, locals followed."""
    found: set[str] = set()
    seen_locals: set[str] = set()
    pending = [text]
    while pending:
        chunk = pending.pop()
        for kind, name in RESOURCE_REF.findall(chunk):
            if name in tf.resources.get(kind, {}):
                found.add(f"{kind}.{name}")
        for name in LOCAL_REF.findall(chunk):
            if name not in seen_locals and name in tf.locals:
                seen_locals.add(name)
                pending.append(_text(tf.locals[name]))
    return found


def _after(tf: Terraform, address: str) -> set[str]:
    """Every resource `address` is ordered after (transitively)."""

    @cache
    def direct(addr: str) -> frozenset[str]:
        kind, name = addr.split(".", 1)
        return frozenset(_direct(tf, _text(tf.resources[kind][name])) - {addr})

    result: set[str] = set()
    pending = [address]
    while pending:
        for dep in direct(pending.pop()):
            if dep not in result:
                result.add(dep)
                pending.append(dep)
    return result


def _google_resources(tf: Terraform) -> list[str]:
    return [
        f"{kind}.{name}"
        for kind, by_name in tf.resources.items()
        if kind.startswith("google_") and kind != "google_project_service"
        for name in by_name
    ]


# --- APIs first -------------------------------------------------------------------------


def test_every_google_resource_is_created_after_the_apis(tf: Terraform) -> None:
    missing = [address for address in _google_resources(tf) if APIS not in _after(tf, address)]

    assert not missing, f"created before the APIs are enabled: {missing}"


def test_no_google_data_source_is_read_before_the_apis(tf: Terraform) -> None:
    # A data source is read at plan time unless it depends on something not yet created;
    # on a fresh project the API it calls may still be disabled then.
    for kind, by_name in tf.data.items():
        if not kind.startswith("google_"):
            continue
        for name, body in by_name.items():
            assert APIS in _text(body.get("depends_on", [])), f"data.{kind}.{name}"


def test_service_agents_are_created_before_they_are_granted(tf: Terraform) -> None:
    identities = tf.resources.get("google_project_service_identity", {})

    assert "pubsub" in identities
    pubsub = identities["pubsub"]
    assert pubsub["service"] == "pubsub.googleapis.com"
    # The resource is only in the google-beta provider.
    assert pubsub["provider"] in ("google-beta", "${google-beta}")
    assert tf.locals["pubsub_service_agent"] == "${google_project_service_identity.pubsub.member}"
    granted = [
        f"{kind}.{name}"
        for kind, by_name in tf.resources.items()
        for name, body in by_name.items()
        if "local.pubsub_service_agent" in _text(body)
    ]
    assert len(granted) >= 3  # tokens for the push account, dead-letter publish, subscribe
    for address in granted:
        assert "google_project_service_identity.pubsub" in _after(tf, address), address


def test_providers_used_are_declared(tf: Terraform) -> None:
    versions = tf.text["versions.tf"]

    assert 'source  = "hashicorp/google-beta"' in versions
    assert 'source  = "hashicorp/time"' in versions
    google = re.search(
        r'google = \{\s*source\s*= "hashicorp/google"\s*version\s*= "([^"]+)"', versions
    )
    beta = re.search(
        r'google-beta = \{\s*source\s*= "hashicorp/google-beta"\s*version\s*= "([^"]+)"', versions
    )
    assert google and beta and google.group(1) == beta.group(1)
    assert 'provider "google-beta"' in versions


# --- secrets: no plan needs one passed again ---------------------------------------------


def _nullable_variables(tf: Terraform) -> set[str]:
    """Variables a plan can leave null: nullable, with a null default."""
    return {
        name
        for name, v in tf.variables.items()
        if v.get("nullable", True) is not False and "default" in v and v["default"] is None
    }


def test_no_write_only_argument_can_be_null(tf: Terraform) -> None:
    # From google provider 7.42 secret_data and secret_data_wo are ExactlyOneOf: a null
    # write-only value (a variable left unset on a normal plan) fails every plan.
    nullable = _nullable_variables(tf)
    write_only = [
        (f"{kind}.{name}", arg, value)
        for kind, by_name in tf.resources.items()
        for name, body in by_name.items()
        for arg, value in body.items()
        if arg.endswith("_wo")
    ]
    assert write_only, "the OTP pepper is still written through secret_data_wo"
    for address, arg, value in write_only:
        variables = set(re.findall(r"\bvar\.([a-z0-9_]+)", _text(value)))
        assert not variables & nullable, f"{address}.{arg} = {value} can be null"
        assert value.startswith("${ephemeral."), f"{address}.{arg} = {value}"


def test_the_twilio_token_is_only_needed_to_seed_an_empty_secret(tf: Terraform) -> None:
    users = [
        f"{kind}.{name}"
        for kind, by_name in tf.resources.items()
        for name, body in by_name.items()
        if "var.twilio_auth_token}" in _text(body) or "var.twilio_auth_token " in _text(body)
    ]
    assert users == ["terraform_data.twilio_auth_token_first_version"]
    seed = tf.resource("terraform_data", "twilio_auth_token_first_version")
    provisioner = one(seed["provisioner"])["local-exec"]
    assert "var.twilio_auth_token" in _text(provisioner["environment"])
    assert "var.twilio_auth_token" not in provisioner["command"]  # not on a command line
    assert "gcloud secrets versions list" in provisioner["command"]
    assert "--data-file=-" in provisioner["command"]
    assert "google_secret_manager_secret.twilio_auth_token" in _text(seed["triggers_replace"])
    assert "twilio_auth_token" not in tf.resources["google_secret_manager_secret_version"]
    # The token's version is the operator's, pinned by number; functions wait for the seed.
    assert tf.locals["secrets"]["TWILIO_AUTH_TOKEN"]["version"] == (
        "${tostring(var.twilio_auth_token_version)}"
    )
    for name, block in tf.resources["google_cloudfunctions2_function"].items():
        assert "${terraform_data.twilio_auth_token_first_version}" in block["depends_on"], name


def test_dropping_the_terraform_made_token_version_keeps_it(tf: Terraform) -> None:
    # Existing deployments: the version Terraform wrote is forgotten, not destroyed.
    removed = re.search(
        r"removed \{\s*from = google_secret_manager_secret_version\.twilio_auth_token\s*"
        r"lifecycle \{\s*destroy = false\s*\}",
        tf.text["secrets.tf"],
    )
    assert removed


# --- monitoring ---------------------------------------------------------------------------


def test_alerts_on_log_based_metrics_do_not_wait_for_the_metric_to_exist(tf: Terraform) -> None:
    # A new log-based metric is unknown to Monitoring for up to ~10 minutes; an alert
    # created in that window fails with 404 "Cannot find metric(s)" unless validation is
    # off (or the apply waits that long).
    alert = tf.resource("google_monitoring_alert_policy", "rfc")
    condition = one(one(alert["conditions"])["condition_prometheus_query_language"])
    assert "logging_googleapis_com:user_" in _text(tf.locals["promql"])
    assert any("local.promql" in a["query"] for a in tf.locals["alerts"].values())

    assert condition.get("disable_metric_validation") is True
    # What the validation would have caught, checked here: every log-based metric an alert
    # queries is one this configuration creates.
    for key, spec in tf.locals["alerts"].items():
        assert "logging_googleapis_com:user_" not in spec["query"], key  # only via local.promql
        for name in re.findall(r"local\.promql\.([a-z0-9_]+)", spec["query"]):
            assert name in tf.locals["log_metrics"], (key, name)


# --- IAM propagation ----------------------------------------------------------------------


def test_functions_and_the_migration_wait_for_their_grants_to_propagate(tf: Terraform) -> None:
    sleeps = tf.resources.get("time_sleep", {})
    assert "iam_propagation" in sleeps
    sleep = sleeps["iam_propagation"]
    assert sleep["create_duration"] == '${format("%ds", var.iam_propagation_seconds)}'
    assert tf.variables["iam_propagation_seconds"]["default"] >= 60
    waited_for = _after(tf, "time_sleep.iam_propagation")
    for grant in (
        "google_secret_manager_secret_iam_member.function",
        "google_project_iam_member.sql",
        "google_project_iam_member.builder",
        "google_storage_bucket_iam_member.builder_reads_sources",
        "google_storage_bucket_iam_member.migrator_reads_sources",
    ):
        assert grant in waited_for, grant
    # Re-waits when the set of grants changes (a new function, a new secret).
    assert "triggers" in sleep
    for consumer in (
        "google_cloudfunctions2_function.webhook",
        "google_cloudfunctions2_function.internal",
        "terraform_data.migrate",
    ):
        assert "time_sleep.iam_propagation" in _after(tf, consumer), consumer


# --- the sources bucket -------------------------------------------------------------------


def test_the_bucket_never_deletes_a_live_archive(tf: Terraform) -> None:
    bucket = tf.resource("google_storage_bucket", "sources")
    rules = bucket["lifecycle_rule"]

    assert rules
    for rule in rules:
        if one(rule["action"])["type"] != "Delete":
            continue
        condition = one(rule["condition"])
        archived_only = condition.get("with_state") == "ARCHIVED"
        assert archived_only or set(condition) <= NONCURRENT_ONLY, condition
    assert any("days_since_noncurrent_time" in one(r["condition"]) for r in rules)


# --- the seed script, run against a stand-in gcloud ---------------------------------------

STUB_GCLOUD = """#!/bin/sh
echo "$*" >> "$GCLOUD_LOG"
case "$1 $2 $3" in
  "secrets versions list") [ -n "${LIST_FAILS:-}" ] && exit 1; printf '%s' "${EXISTING:-}"; exit 0 ;;
  "secrets versions add") cat > "$GCLOUD_STDIN"; echo "Created version [1]"; exit 0 ;;
esac
exit 2
"""


def _heredoc(raw: str) -> str:
    """The string an indented `<<-EOT` heredoc stands for (python-hcl2 returns it raw)."""
    head, _, rest = raw.partition("\n")
    assert head == "<<-EOT", head
    body, _, tail = rest.rpartition("\n")
    assert tail.strip() == "EOT", tail
    assert "${" not in body and "%{" not in body  # no interpolation to resolve
    return textwrap.dedent(body) + "\n"


def _run_seed(
    tmp_path: Any, *, existing: str = "", token: str = "", list_fails: bool = False
) -> tuple[int, str, str]:
    seed = one(load().resource("terraform_data", "twilio_auth_token_first_version")["provisioner"])
    command = _heredoc(seed["local-exec"]["command"])
    assert seed["local-exec"]["interpreter"] == ["/bin/sh", "-c"]
    stub = tmp_path / "bin" / "gcloud"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text(STUB_GCLOUD)
    stub.chmod(0o755)
    log, stdin = tmp_path / "argv.log", tmp_path / "stdin"
    log.write_text("")
    env = {
        "PATH": f"{stub.parent}:{os.environ['PATH']}",
        "GCLOUD_LOG": str(log),
        "GCLOUD_STDIN": str(stdin),
        "EXISTING": existing,
        "SECRET": "whatsapp-handler-twilio-auth-token",
        "PROJECT": "railrepay-prod",
        "TWILIO_AUTH_TOKEN": token,
    }
    if list_fails:
        env["LIST_FAILS"] = "1"
    done = subprocess.run(
        ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, check=False
    )
    return done.returncode, log.read_text(), stdin.read_text() if stdin.exists() else ""


TOKEN = "0123456789abcdef0123456789abcdef"


def test_the_seed_adds_the_token_as_the_first_version_on_stdin(tmp_path: Any) -> None:
    code, argv, stdin = _run_seed(tmp_path, token=TOKEN)

    assert code == 0
    assert (
        "secrets versions add whatsapp-handler-twilio-auth-token --project=railrepay-prod --data-file=-"
        in argv
    )
    assert stdin == TOKEN
    assert TOKEN not in argv


def test_the_seed_leaves_a_secret_with_a_version_alone(tmp_path: Any) -> None:
    code, argv, _ = _run_seed(tmp_path, existing="projects/1/secrets/s/versions/3")

    assert code == 0
    assert "versions add" not in argv


def test_the_seed_stops_the_apply_when_there_is_no_version_and_no_token(tmp_path: Any) -> None:
    code, argv, _ = _run_seed(tmp_path)

    assert code != 0
    assert "versions add" not in argv


def test_the_seed_stops_when_gcloud_cannot_list_the_versions(tmp_path: Any) -> None:
    code, argv, _ = _run_seed(tmp_path, token=TOKEN, list_fails=True)

    assert code != 0
    assert "versions add" not in argv
