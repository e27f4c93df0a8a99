"""whatsapp-handler chat +447700900123: talk to the webhook as that WhatsApp number.

Each line typed is POSTed as Twilio would POST an inbound WhatsApp message (the same
form fields, signed with ``X-Twilio-Signature`` over the public URL with the auth token)
and the TwiML reply is printed. ``/photo PATH [caption]`` sends an image or PDF (the
`make dev` Twilio stand-in hosts it, as Twilio hosts inbound media; elsewhere a file://
URL). Against `make dev` the SMS and WhatsApp messages the service sends to this number
(the OTP code, notifications) are shown as they arrive. Ctrl-D ends the chat.

Where to talk: ``--url`` (with ``TWILIO_AUTH_TOKEN`` and ``WEBHOOK_PUBLIC_URL`` from the
environment or ``--token``/``--public-url``), else the running `make dev` stack
(``.dev/stack.json``), else ``WEBHOOK_PUBLIC_URL``.
"""

from __future__ import annotations

import argparse
import base64
import json
import mimetypes
import re
import secrets
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HELP = "talk to the webhook as a WhatsApp user (signed like Twilio); Ctrl-D quits"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
DEFAULT_WHATSAPP_TO = "whatsapp:+14155238886"  # Twilio's WhatsApp sandbox number
PLACEHOLDER_ACCOUNT_SID = "AC" + "0" * 32


class ChatError(RuntimeError):
    """Something the user can fix; the message is one line saying how."""


@dataclass(frozen=True)
class ChatTarget:
    webhook_url: str  # where the POST goes
    public_url: str  # what the signature covers (Twilio signs the URL it calls)
    auth_token: str
    account_sid: str
    whatsapp_to: str  # our WhatsApp number, "whatsapp:+44..."
    standin_url: str | None = None  # the `make dev` Twilio stand-in, when there is one


@dataclass(frozen=True)
class WebhookReply:
    status: int
    content_type: str
    body: str

    @property
    def texts(self) -> list[str]:
        return reply_texts(self.body) if self.status == 200 else []


# --- pure helpers ------------------------------------------------------------------------


def normalise_number(raw: str) -> str:
    """'+447700900123' or 'whatsapp:+447700900123' -> '+447700900123'."""
    number = raw.strip().removeprefix("whatsapp:").replace(" ", "")
    if not E164.match(number):
        raise ChatError(f"{raw!r} is not an E.164 number like +447700900123")
    return number


def new_message_sid() -> str:
    return "SM" + secrets.token_hex(16)


def inbound_form(
    *,
    number: str,
    body: str,
    target: ChatTarget,
    message_sid: str | None = None,
    profile_name: str = "Dev User",
    media: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """The form fields Twilio POSTs for an inbound WhatsApp message (media: (url, type))."""
    sid = message_sid or new_message_sid()
    if media:
        first_type = media[0][1]
        message_type = "image" if first_type.startswith("image/") else "document"
    else:
        message_type = "text"
    form = {
        "SmsMessageSid": sid,
        "NumMedia": str(len(media)),
        "ProfileName": profile_name,
        "MessageType": message_type,
        "SmsSid": sid,
        "WaId": number.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": target.whatsapp_to,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": target.account_sid,
        "From": f"whatsapp:{number}",
        "ApiVersion": "2010-04-01",
    }
    for index, (url, content_type) in enumerate(media):
        form[f"MediaUrl{index}"] = url
        form[f"MediaContentType{index}"] = content_type
    return form


def twilio_signature(url: str, form: Mapping[str, str], auth_token: str) -> str:
    """X-Twilio-Signature exactly as Twilio computes it (twilio's own RequestValidator)."""
    from twilio.request_validator import RequestValidator

    return str(RequestValidator(auth_token).compute_signature(url, dict(form)))


def reply_texts(twiml: str) -> list[str]:
    """The text of each <Message> in a TwiML reply (a <Body> child or the element's text)."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(twiml)  # noqa: S314 - our own webhook's TwiML
    except ElementTree.ParseError:
        return [twiml.strip()] if twiml.strip() else []
    texts = []
    for message in root.iter("Message"):
        body = message.find("Body")
        text = (body.text if body is not None else message.text) or ""
        media = [element.text or "" for element in message.iter("Media")]
        texts.append(text.strip() + "".join(f"\n[media] {url}" for url in media))
    return texts


def content_type_for(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def _basic_auth(target: ChatTarget) -> str:
    pair = f"{target.account_sid}:{target.auth_token}".encode()
    return "Basic " + base64.b64encode(pair).decode()


# --- talking to the webhook and the stand-in -----------------------------------------------


def post_inbound(target: ChatTarget, form: Mapping[str, str], timeout: float = 20) -> WebhookReply:
    """POST the form to the webhook, signed over the public URL, as Twilio does."""
    request = urllib.request.Request(  # noqa: S310 - the URL the developer chose
        target.webhook_url,
        data=urlencode(form).encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Twilio-Signature": twilio_signature(target.public_url, form, target.auth_token),
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
            "Accept": "*/*",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return WebhookReply(
                int(response.status),
                response.headers.get("Content-Type", ""),
                response.read().decode("utf-8", errors="replace"),
            )
    except urllib.error.HTTPError as error:
        return WebhookReply(
            error.code,
            error.headers.get("Content-Type", "") if error.headers else "",
            error.read().decode("utf-8", errors="replace"),
        )


def send_text(
    target: ChatTarget, number: str, body: str, media: Sequence[tuple[str, str]] = ()
) -> WebhookReply:
    return post_inbound(target, inbound_form(number=number, body=body, target=target, media=media))


def fetch_messages(
    target: ChatTarget, number: str, after: int = 0, timeout: float = 5
) -> tuple[list[dict[str, Any]], int]:
    """Messages the stand-in was asked to send to ``number`` (SMS or WhatsApp), after the
    first ``after``; and the cursor for the next call."""
    if target.standin_url is None:
        return [], after
    query = urlencode({"to": number, "after": str(after)})
    request = urllib.request.Request(  # noqa: S310 - the local stand-in
        f"{target.standin_url}/dev/messages?{query}",
        headers={"Authorization": _basic_auth(target)},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        answer = json.loads(response.read())
    return list(answer["messages"]), int(answer["next"])


def media_url_for(target: ChatTarget, path: Path) -> tuple[str, str]:
    """(URL, content type) for a file: hosted by the stand-in when there is one."""
    if not path.is_file():
        raise ChatError(f"no such file: {path}")
    content_type = content_type_for(path)
    if target.standin_url is None:
        return path.resolve().as_uri(), content_type
    request = urllib.request.Request(  # noqa: S310 - the local stand-in
        f"{target.standin_url}/dev/media",
        data=path.read_bytes(),
        method="POST",
        headers={"Authorization": _basic_auth(target), "Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return str(json.loads(response.read())["url"]), content_type


# --- choosing the target -------------------------------------------------------------------


def resolve_target(
    *,
    url: str | None,
    token: str | None,
    public_url: str | None,
    whatsapp_to: str | None,
    stack: Mapping[str, Any] | None,
    environment: Any,
) -> ChatTarget:
    """Flags first; then the running dev stack (when no --url); then the environment."""
    env_token = environment.twilio_auth_token
    env_token_text = env_token.get_secret_value() if env_token is not None else None
    if url is None and stack is not None and stack.get("webhook_url"):
        return ChatTarget(
            webhook_url=str(stack["webhook_url"]),
            public_url=public_url or str(stack["webhook_public_url"]),
            auth_token=token or str(stack["twilio_auth_token"]),
            account_sid=str(stack["twilio_account_sid"]),
            whatsapp_to=whatsapp_to or str(stack["twilio_whatsapp_from"]),
            standin_url=str(stack["twilio_api_base_url"]),
        )
    if url is None and stack is not None:
        raise ChatError("the dev stack is running but serves no webhook yet (see its start-up)")
    chosen = url or environment.webhook_public_url
    if not chosen:
        raise ChatError(
            "no webhook to talk to: start `make dev` in another terminal, "
            "or pass --url (and TWILIO_AUTH_TOKEN, WEBHOOK_PUBLIC_URL)"
        )
    secret = token or env_token_text
    if not secret:
        raise ChatError(f"TWILIO_AUTH_TOKEN (or --token) is needed to sign requests to {chosen}")
    base = environment.twilio_api_base_url
    return ChatTarget(
        webhook_url=chosen,
        public_url=public_url or environment.webhook_public_url or chosen,
        auth_token=secret,
        account_sid=environment.twilio_account_sid or PLACEHOLDER_ACCOUNT_SID,
        whatsapp_to=whatsapp_to or environment.twilio_whatsapp_from or DEFAULT_WHATSAPP_TO,
        # A stand-in only: the real Twilio API has no /dev/messages.
        standin_url=None if "api.twilio.com" in base else base.rstrip("/"),
    )


# --- the command ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", help="the WhatsApp number to chat as, e.g. +447700900123")
    parser.add_argument("--url", default=None, help="webhook URL to POST to (default: make dev)")
    parser.add_argument(
        "--public-url", default=None, help="URL the signature covers (WEBHOOK_PUBLIC_URL)"
    )
    parser.add_argument("--token", default=None, help="auth token (TWILIO_AUTH_TOKEN)")
    parser.add_argument(
        "--to", default=None, help="our WhatsApp number (TWILIO_WHATSAPP_FROM), whatsapp:+..."
    )
    parser.add_argument("--name", default="Dev User", help="ProfileName sent with each message")
    parser.add_argument("--dev-dir", type=Path, default=None, help="the dev stack's folder")


class _Printer:
    """Lines from the typing loop and the SMS poller, never interleaved mid-line."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.lock = threading.Lock()

    def show(self, prefix: str, text: str, *, reprompt: bool = False) -> None:
        with self.lock:
            lead = "\r" if reprompt and self.interactive else ""
            lines = text.splitlines() or [""]
            print(lead + prefix + lines[0])
            for line in lines[1:]:
                print(" " * len(prefix) + line)
            if reprompt and self.interactive:
                print("you> ", end="", flush=True)
            sys.stdout.flush()


class _Inbox:
    """Shows each message the stand-in recorded for this number once."""

    def __init__(self, target: ChatTarget, number: str, printer: _Printer) -> None:
        self.target, self.number, self.printer = target, number, printer
        self.cursor = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.failed = False

    def skip_history(self) -> None:
        with self.lock:
            _, self.cursor = fetch_messages(self.target, self.number, 0)

    def poll(self, *, reprompt: bool) -> None:
        with self.lock:
            try:
                messages, self.cursor = fetch_messages(self.target, self.number, self.cursor)
            except (OSError, ValueError, KeyError):
                if not self.failed:
                    self.printer.show("!! ", "cannot reach the Twilio stand-in", reprompt=reprompt)
                self.failed = True
                return
            self.failed = False
        for message in messages:
            channel = "whatsapp" if str(message["to"]).startswith("whatsapp:") else "sms"
            text = message.get("body")
            if text is None:
                text = f"(template {message.get('content_sid')} {message.get('content_variables')})"
            self.printer.show(f"[{channel}] ", str(text), reprompt=reprompt)

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            self.poll(reprompt=True)


def _one_turn(
    line: str, target: ChatTarget, number: str, name: str, printer: _Printer
) -> WebhookReply | None:
    media: list[tuple[str, str]] = []
    body = line
    if line.startswith("/photo"):
        parts = line.split(maxsplit=2)
        if len(parts) < 2:
            printer.show("!! ", "usage: /photo PATH [caption]")
            return None
        media.append(media_url_for(target, Path(parts[1]).expanduser()))
        body = parts[2] if len(parts) > 2 else ""
    reply = post_inbound(
        target,
        inbound_form(number=number, body=body, target=target, media=media, profile_name=name),
    )
    if reply.status != 200:
        printer.show("!! ", f"webhook answered {reply.status}: {reply.body.strip()[:300]}")
    elif not reply.texts:
        printer.show("bot> ", "(no reply)")
    for text in reply.texts:
        printer.show("bot> ", text)
    return reply


def chat_loop(
    target: ChatTarget,
    number: str,
    *,
    name: str = "Dev User",
    read_line: Callable[[], str] | None = None,
    interactive: bool = False,
) -> int:
    printer = _Printer(interactive)
    inbox = _Inbox(target, number, printer)
    if target.standin_url is not None:
        try:
            inbox.skip_history()
        except (OSError, ValueError, KeyError):
            printer.show("!! ", f"the Twilio stand-in at {target.standin_url} does not answer")
        threading.Thread(target=inbox.run, name="inbox", daemon=True).start()
    else:
        printer.show("   ", "SMS sent to this number are not shown (no Twilio stand-in)")
    read = read_line or (lambda: input("you> " if interactive else ""))
    try:
        while True:
            try:
                line = read().strip()
            except EOFError:
                if interactive:
                    print()
                return 0
            if not line:
                continue
            if line in ("/quit", "/exit"):
                return 0
            if line == "/help":
                printer.show("   ", "type a message; /photo PATH [caption]; Ctrl-D or /quit ends")
                continue
            try:
                _one_turn(line, target, number, name, printer)
            except ChatError as error:
                printer.show("!! ", str(error))
            except OSError as error:
                printer.show("!! ", f"cannot reach {target.webhook_url}: {error}")
            if target.standin_url is not None:
                inbox.poll(reprompt=False)
    finally:
        inbox.stopping.set()


def run(args: argparse.Namespace) -> int:
    from tools.devstack import environment_settings, load_stack

    try:
        number = normalise_number(args.number)
        target = resolve_target(
            url=args.url,
            token=args.token,
            public_url=args.public_url,
            whatsapp_to=args.to,
            stack=load_stack(args.dev_dir) if args.url is None else None,
            environment=environment_settings(),
        )
    except ChatError as error:
        print(f"whatsapp-handler chat: {error}", file=sys.stderr)
        return 2
    interactive = sys.stdin.isatty()
    if interactive:
        import contextlib

        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 - line editing and history for input()
        print(
            f"Chatting as whatsapp:{number} with {target.webhook_url} "
            f"(signed for {target.public_url}).\n"
            "Type a message, /photo PATH [caption] to send a ticket picture; Ctrl-D ends."
        )
    return chat_loop(target, number, name=args.name, interactive=interactive)
