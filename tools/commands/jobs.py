"""whatsapp-handler jobs list | run NAME | pause NAME | resume NAME: the Cloud Scheduler jobs.

    whatsapp-handler jobs list --project P [--region europe-west2]
    whatsapp-handler jobs run outbox_relay --project P     # run the relay now (after an incident)
    whatsapp-handler jobs pause gdpr_cleanup --project P   # e.g. during a database restore

NAME is a job's id (``whatsapp-handler-outbox-relay``), the function target it calls
(``outbox_relay``, ``outbox-relay``) or the full resource name. Jobs are the ones
Terraform created (terraform/scheduler.tf); ``list`` shows only those whose id starts
with ``--prefix``. Credentials are Application Default Credentials
(``gcloud auth application-default login``); ``--api-endpoint`` points the client at
another server (a local stand-in of the Cloud Scheduler REST API) with anonymous
credentials, as the tests do.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

HELP = "list, run now, pause or resume the Cloud Scheduler jobs (relay, purge, GDPR)"
DEFAULT_PREFIX = "whatsapp-handler"
DEFAULT_REGION = "europe-west2"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="jobs_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the service's jobs: schedule, state, last run")
    _common(listing)
    for action, text in (
        ("run", "run a job now (Cloud Scheduler calls its function at once)"),
        ("pause", "stop a job's schedule until resumed"),
        ("resume", "restart a paused job's schedule"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("name", help="job id, function target (outbox_relay) or resource name")
        _common(sub)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", required=True, help="Google Cloud project id")
    parser.add_argument("--region", default=DEFAULT_REGION, help="Cloud Scheduler location")
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help="Terraform's name_prefix (job ids start with it)"
    )
    parser.add_argument(
        "--api-endpoint",
        default=None,
        help="talk to this server instead of Google, with anonymous credentials (stand-ins)",
    )


# --- pure ---------------------------------------------------------------------------


def parent_path(project: str, region: str) -> str:
    return f"projects/{project}/locations/{region}"


def job_path(name: str, *, project: str, region: str, prefix: str) -> str:
    """Full resource name of a job from what an operator types."""
    if name.startswith("projects/"):
        return name
    job_id = name.replace("_", "-")
    if not job_id.startswith(f"{prefix}-"):
        job_id = f"{prefix}-{job_id}"
    return f"{parent_path(project, region)}/jobs/{job_id}"


@dataclass(frozen=True)
class JobRow:
    job_id: str
    schedule: str
    time_zone: str
    state: str
    last_attempt: str
    last_status: str
    target: str


def _when(value: datetime | None) -> str:
    if value is None or value.timestamp() <= 0:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def job_row(job: Any) -> JobRow:
    status = "-"
    if job.last_attempt_time and job.last_attempt_time.timestamp() > 0:
        status = "ok" if job.status.code == 0 else f"error {job.status.code}: {job.status.message}"
    return JobRow(
        job_id=job.name.rsplit("/", 1)[-1],
        schedule=job.schedule,
        time_zone=job.time_zone,
        state=job.state.name,
        last_attempt=_when(job.last_attempt_time),
        last_status=status,
        target=job.http_target.uri or "-",
    )


def render_table(rows: Sequence[JobRow]) -> str:
    header = ("JOB", "SCHEDULE", "TIME ZONE", "STATE", "LAST ATTEMPT", "LAST STATUS", "TARGET")
    cells = [header] + [
        (r.job_id, r.schedule, r.time_zone, r.state, r.last_attempt, r.last_status, r.target)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def ours(jobs: Iterable[Any], prefix: str) -> list[Any]:
    return sorted(
        (job for job in jobs if job.name.rsplit("/", 1)[-1].startswith(f"{prefix}-")),
        key=lambda job: str(job.name),
    )


# --- shell ----------------------------------------------------------------------------


def client(api_endpoint: str | None) -> Any:
    from google.cloud import scheduler_v1

    if api_endpoint is None:
        return scheduler_v1.CloudSchedulerClient()
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    return scheduler_v1.CloudSchedulerClient(
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        transport="rest",
        client_options=ClientOptions(api_endpoint=api_endpoint),
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from google.api_core import exceptions

    scheduler = client(args.api_endpoint)
    try:
        if args.jobs_action == "list":
            jobs = ours(
                scheduler.list_jobs(parent=parent_path(args.project, args.region)), args.prefix
            )
            if not jobs:
                print(f"no jobs named {args.prefix}-* in {parent_path(args.project, args.region)}")
                return 1
            print(render_table([job_row(job) for job in jobs]))
            return 0
        name = job_path(args.name, project=args.project, region=args.region, prefix=args.prefix)
        method = {
            "run": scheduler.run_job,
            "pause": scheduler.pause_job,
            "resume": scheduler.resume_job,
        }[args.jobs_action]
        job = method(name=name)
    except exceptions.NotFound:
        print(f"whatsapp-handler jobs: no such job: {args.name}", file=sys.stderr)
        return 1
    except exceptions.GoogleAPICallError as error:
        print(f"whatsapp-handler jobs: Cloud Scheduler refused: {error.message}", file=sys.stderr)
        return 1
    finally:
        scheduler.transport.close()
    done = {"run": "started", "pause": "paused", "resume": "resumed"}[args.jobs_action]
    print(f"{done} {job.name.rsplit('/', 1)[-1]} (state {job.state.name}); see: jobs list")
    return 0
