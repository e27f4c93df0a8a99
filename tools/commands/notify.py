"""whatsapp-handler notify USER_ID "text": ask for a WhatsApp notification, as a downstream
service would (contract section 6a), by publishing to NOTIFY_TOPIC.

Against the running `make dev` stack it uses the stack's emulator (whose push
subscription feeds the notifier); where the stack runs without the emulator it delivers
the same Pub/Sub push request straight to the notifier's local URL. Otherwise it
publishes with the environment's settings (PUBSUB_EMULATOR_HOST, or Google Cloud with
application-default credentials).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HELP = "publish a notification request {notification_id, user_id, text} to NOTIFY_TOPIC"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user_id", type=uuid.UUID, help="the user's id (users.id)")
    parser.add_argument("text", nargs="?", default=None, help="the message text")
    parser.add_argument("--notification-id", default=None, help="default: a new UUID")
    parser.add_argument("--content-sid", default=None, help="approved WhatsApp template (HX...)")
    parser.add_argument(
        "--content-variables", default=None, help='template variables as JSON, e.g. {"1": "x"}'
    )
    parser.add_argument("--dev-dir", type=Path, default=None, help="the dev stack's folder")
    parser.add_argument(
        "--no-dev-stack", action="store_true", help="ignore a running `make dev` stack"
    )


def notification_request(
    *,
    user_id: uuid.UUID,
    text: str | None,
    notification_id: str | None = None,
    content_sid: str | None = None,
    content_variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The message body of contract section 6a."""
    request: dict[str, Any] = {
        "notification_id": notification_id or str(uuid.uuid4()),
        "user_id": str(user_id),
    }
    if text is not None:
        request["text"] = text
    if content_sid is not None:
        request["content_sid"] = content_sid
    if content_variables is not None:
        request["content_variables"] = dict(content_variables)
    return request


def push_envelope(data: bytes, subscription: str) -> dict[str, Any]:
    """What a Pub/Sub push subscription POSTs; functions-framework turns it into a CloudEvent."""
    message_id = str(uuid.uuid4().int % 10**16)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "subscription": subscription,
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": {},
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": now,
            "publish_time": now,
        },
    }


def publish(project: str, topic: str, data: bytes, timeout: float = 30) -> str:
    import google.cloud.pubsub_v1 as pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    try:
        future = publisher.publish(publisher.topic_path(project, topic), data)
        return str(future.result(timeout=timeout))
    finally:
        publisher.stop()


def run(args: argparse.Namespace) -> int:
    import os

    from tools.devstack import environment_settings, load_stack, post_json

    if args.text is None and args.content_sid is None:
        print("whatsapp-handler notify: give the text (or --content-sid)", file=sys.stderr)
        return 2
    variables = json.loads(args.content_variables) if args.content_variables else None
    request = notification_request(
        user_id=args.user_id,
        text=args.text,
        notification_id=args.notification_id,
        content_sid=args.content_sid,
        content_variables=variables,
    )
    data = json.dumps(request).encode()
    stack = None if args.no_dev_stack else load_stack(args.dev_dir)
    if stack is not None and not stack.get("pubsub_emulator_host"):
        if not stack.get("notifier_url"):
            print("whatsapp-handler notify: the dev stack serves no notifier", file=sys.stderr)
            return 1
        subscription = f"projects/{stack['google_cloud_project']}/subscriptions/dev-direct"
        status, _answer = post_json(str(stack["notifier_url"]), push_envelope(data, subscription))
        print(f"delivered notification {request['notification_id']} to the notifier: {status}")
        return 0 if 200 <= status < 300 else 1
    if stack is not None:
        os.environ["PUBSUB_EMULATOR_HOST"] = str(stack["pubsub_emulator_host"])
        project, topic = str(stack["google_cloud_project"]), str(stack["notify_topic"])
    else:
        settings = environment_settings()
        if settings.pubsub_emulator_host:
            os.environ["PUBSUB_EMULATOR_HOST"] = settings.pubsub_emulator_host
        project, topic = settings.google_cloud_project, settings.notify_topic
    message_id = publish(project, topic, data)
    print(
        f"published notification {request['notification_id']} to projects/{project}/topics/"
        f"{topic} (message {message_id})"
    )
    return 0
