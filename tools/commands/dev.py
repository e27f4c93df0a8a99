"""whatsapp-handler dev: the whole service locally, in the foreground (what `make dev` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the whole service locally until Ctrl-C (what `make dev` runs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dev-dir",
        type=Path,
        default=None,
        help="where embedded data, logs, events and stack.json live (default: .dev/)",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="start embedded PostgreSQL/Redis/emulator even when DATABASE_URL etc. answer "
        "(also WH_FORCE_EMBEDDED=1)",
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="any free ports instead of the usual 8080-8086, 8090, 54320, 63790",
    )
    parser.add_argument(
        "--no-emulator",
        action="store_true",
        help="do not use the Pub/Sub emulator: events are shown from the outbox instead",
    )
    parser.add_argument(
        "--relay-every", type=float, default=2.0, metavar="SECONDS", help="relay timer (2 s)"
    )
    parser.add_argument(
        "--jobs-every",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="purge and GDPR timer (3600 s; Cloud Scheduler runs them daily)",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="WEBHOOK_PUBLIC_URL to validate signatures against (default: the local URL)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show every log line (default: warnings and up)"
    )


def run(args: argparse.Namespace) -> int:
    from tools.devstack import DevOptions, default_dev_dir, run_dev_stack

    options = DevOptions(
        dev_dir=(args.dev_dir or default_dev_dir()).resolve(),
        embedded=args.embedded,
        free_ports=args.free_ports,
        use_emulator=not args.no_emulator,
        relay_every_seconds=args.relay_every,
        jobs_every_seconds=args.jobs_every,
        verbose=args.verbose,
        public_url=args.public_url,
    )
    return run_dev_stack(options)
