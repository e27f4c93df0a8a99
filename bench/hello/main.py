"""Hello-world HTTP function: the baseline the webhook's cold start and throughput are
compared with, served by functions-framework the same way."""

from __future__ import annotations

from typing import Any


def hello(request: Any) -> tuple[str, int, dict[str, str]]:
    return "<Response/>", 200, {"Content-Type": "text/xml"}
