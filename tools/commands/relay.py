"""whatsapp-handler relay [--once]: the outbox relay from a shell (and `make dev`'s timer).

`--once` drains the backlog once and prints the summary. Without it the relay runs until
interrupted, one RELAY_LOOP_SECONDS cycle after another (at least a second each), printing
a JSON summary line per cycle. Against the emulator it creates the topic first.
"""

from __future__ import annotations

import argparse
import json

HELP = "publish the outbox to Pub/Sub (--once: drain the backlog, then exit)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once", action="store_true", help="drain the backlog once, print a summary, exit"
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from shared.adapters.pubsub import EventPublisher
    from shared.db import Database
    from shared.logs import configure_logging
    from shared.relay_policy import RelayPolicy
    from shared.services import relay
    from shared.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    policy = RelayPolicy.from_settings(settings)
    database = Database(settings)
    publisher = EventPublisher.from_settings(settings)
    try:
        if settings.pubsub_emulator_host:
            publisher.ensure_topic_for_local_dev()
        if args.once:
            summary = relay.run_relay(database, publisher, replace(policy, loop_seconds=0))
            print(json.dumps(summary.as_dict()), flush=True)
            return 0
        cycle = replace(policy, loop_seconds=max(policy.loop_seconds, 1.0))
        while True:
            summary = relay.run_relay(database, publisher, cycle)
            print(json.dumps(summary.as_dict()), flush=True)
    finally:
        publisher.close()
        database.close()
