"""The ticket: photos and PDFs wherever they come (the ``MEDIA`` table), kept for a claim
(sent before one, a CLAIM picks them up), and the ticket question's text answers.
"""

from __future__ import annotations

from dataclasses import replace

from shared.conversation.claim_flow import advance, ask_again
from shared.conversation.model import Decision, Phase, PublishTicket
from shared.conversation.turn import Turn
from shared.events import Media
from shared.replies import R

MAX_TICKET_FILES = 10
# WhatsApp sends stickers as WebP images; cameras and screenshots give JPEG, PNG or HEIC.
STICKER_TYPES = frozenset({"image/webp"})


def _kind(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def is_ticket_type(content_type: str) -> bool:
    kind = _kind(content_type)
    if kind in STICKER_TYPES:
        return False
    return kind.startswith("image/") or kind == "application/pdf"


def _ticket_files(turn: Turn) -> tuple[tuple[Media, ...], int]:
    accepted = tuple(item for item in turn.inbound.media if is_ticket_type(item.content_type))
    return accepted, len(turn.inbound.media) - len(accepted)


def _skipped(turn: Turn, count: int) -> str:
    if not count:
        return ""
    if count == 1:
        return " " + turn.say(R.SKIPPED_ONE)
    return " " + turn.say(R.SKIPPED_MANY, count=count)


def _not_a_ticket(turn: Turn) -> Decision:
    stickers = all(_kind(item.content_type) in STICKER_TYPES for item in turn.inbound.media)
    return ask_again(turn, turn.say(R.STICKER if stickers else R.NOT_A_TICKET))


def ticket_in_claim(turn: Turn) -> Decision:
    accepted, skipped = _ticket_files(turn)
    if not accepted:
        return _not_a_ticket(turn)
    draft = turn.draft
    # Asked again for the ticket after the summary: the new files replace the old.
    replacing = turn.state.phase is Phase.CLAIM_TICKET and draft.reviewed
    kept = () if replacing else draft.ticket
    attached = replace(draft, ticket=(kept + accepted)[:MAX_TICKET_FILES])
    published = PublishTicket(turn.derived_id("ticket"), accepted, draft.journey_id)
    said = turn.say(R.GOT_TICKET) + _skipped(turn, skipped)
    return advance(turn, attached, said, published)


def ticket_outside_claim(turn: Turn) -> Decision:
    accepted, skipped = _ticket_files(turn)
    if not accepted:
        return _not_a_ticket(turn)
    files = (turn.state.recent_ticket + accepted)[:MAX_TICKET_FILES]
    kept = replace(turn.state, recent_ticket=files)
    if len(files) > len(accepted):
        text = turn.say(R.TICKET_OUTSIDE_CLAIM_MORE, count=len(files))
    else:
        text = turn.say(R.TICKET_OUTSIDE_CLAIM)
    return turn.move(
        kept,
        f"{text}{_skipped(turn, skipped)}",
        PublishTicket(turn.derived_id("ticket"), accepted),
    )


def ticket_too_early(turn: Turn) -> Decision:
    return turn.stay(f"{turn.say(R.TICKET_TOO_EARLY)} {turn.prompt()}")


def answer_ticket(turn: Turn) -> Decision:
    return ask_again(turn, turn.say(R.NEED_TICKET))


def skip_ticket(turn: Turn) -> Decision:
    draft = replace(turn.draft, reviewed=True)
    confirming = replace(turn.state, phase=Phase.CLAIM_CONFIRM, claim=draft)
    return turn.move(confirming, turn.prompt(confirming))
