"""`whatsapp-handler jobs` against a local stand-in of the Cloud Scheduler REST API.

The stand-in is seeded with the jobs Terraform declares (names, schedules, time zone,
deadlines from terraform/locals.tf), so the command and the deployment agree on names.
The real google-cloud-scheduler client does the talking; nothing contacts Google.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.terraform.hcl import load
from tests.terraform.scheduler_standin import SchedulerStandIn
from tools.cli import main

PROJECT = "railrepay-test"
REGION = "europe-west2"
PREFIX = "whatsapp-handler"


@pytest.fixture
def scheduler() -> Iterator[SchedulerStandIn]:
    tf = load()
    table = {**tf.locals["public_functions"], **tf.locals["internal_functions"]}
    standin = SchedulerStandIn().start()
    for target, schedule in tf.locals["schedules"].items():
        job_id = f"{PREFIX}-{target.replace('_', '-')}"
        standin.add_job(
            f"projects/{PROJECT}/locations/{REGION}/jobs/{job_id}",
            schedule=schedule["schedule"],
            time_zone=tf.locals["schedule_time_zone"],
            uri=f"https://{job_id}-abc123-nw.a.run.app",
            deadline_seconds=table[target]["timeout_seconds"]
            + tf.locals["scheduler_deadline_slack_seconds"],
        )
    # Someone else's job in the same location: not ours, not listed.
    standin.add_job(
        f"projects/{PROJECT}/locations/{REGION}/jobs/billing-nightly",
        schedule="0 1 * * *",
        time_zone="Etc/UTC",
        uri="https://billing.example",
        deadline_seconds=60,
    )
    yield standin
    standin.stop()


def _jobs(standin: SchedulerStandIn, *args: str) -> list[str]:
    return [
        "jobs",
        *args,
        "--project",
        PROJECT,
        "--region",
        REGION,
        "--api-endpoint",
        standin.endpoint,
    ]


def test_list_shows_our_jobs_with_schedule_and_state_across_pages(
    scheduler: SchedulerStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(_jobs(scheduler, "list"))

    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert status == 0
    assert lines[0].split()[:2] == ["JOB", "SCHEDULE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {
        "whatsapp-handler-gdpr-cleanup",
        "whatsapp-handler-outbox-purge",
        "whatsapp-handler-outbox-relay",
    }
    assert "* * * * *" in rows["whatsapp-handler-outbox-relay"]
    assert "0 3 * * *" in rows["whatsapp-handler-gdpr-cleanup"]
    assert all("Etc/UTC" in row and "ENABLED" in row for row in rows.values())
    # Three of our jobs plus one other at two a page: the client followed the page token.
    listed = [r for r in scheduler.requests if r.method == "GET" and r.path.endswith("/jobs")]
    assert len(listed) == 2
    assert listed[1].query["pageToken"] == ["2"]


def test_run_by_target_name_runs_that_job_once(
    scheduler: SchedulerStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(_jobs(scheduler, "run", "outbox_relay"))

    assert status == 0
    assert "started whatsapp-handler-outbox-relay" in capsys.readouterr().out
    assert scheduler.runs("jobs/whatsapp-handler-outbox-relay") == 1
    assert scheduler.runs("jobs/whatsapp-handler-gdpr-cleanup") == 0
    # Anonymous credentials: no token is sent to a stand-in.
    assert all(r.authorization is None for r in scheduler.requests)


def test_run_then_list_shows_the_attempt(
    scheduler: SchedulerStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_jobs(scheduler, "run", "whatsapp-handler-gdpr-cleanup")) == 0
    capsys.readouterr()

    assert main(_jobs(scheduler, "list")) == 0

    row = next(
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("whatsapp-handler-gdpr-cleanup")
    )
    assert " UTC" in row and " ok " in row


def test_pause_and_resume_change_the_state(
    scheduler: SchedulerStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"projects/{PROJECT}/locations/{REGION}/jobs/whatsapp-handler-outbox-purge"

    assert main(_jobs(scheduler, "pause", "outbox-purge")) == 0
    assert scheduler.jobs[name]["state"] == "PAUSED"
    assert "paused whatsapp-handler-outbox-purge (state PAUSED)" in capsys.readouterr().out
    assert main(_jobs(scheduler, "resume", name)) == 0
    assert scheduler.jobs[name]["state"] == "ENABLED"


def test_unknown_job_is_one_clear_line_and_exit_1(
    scheduler: SchedulerStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(_jobs(scheduler, "run", "billing_nightly_typo"))

    err = capsys.readouterr().err
    assert status == 1
    assert err.strip() == "whatsapp-handler jobs: no such job: billing_nightly_typo"


def test_list_in_an_empty_location_says_so(
    scheduler: SchedulerStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(_jobs(scheduler, "list", "--prefix", "nobody"))

    assert status == 1
    assert "no jobs named nobody-*" in capsys.readouterr().out
