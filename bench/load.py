"""wrk with many distinct pre-built requests, and the request files it replays.

One request a line, tab-separated: ``METHOD PATH``, then ``Name: value`` headers, then
the body (possibly empty). The Lua script splits the file between wrk's threads (line
``n`` goes to thread ``n % threads``), builds every request once with ``wrk.format`` in
``init`` and hands them out in turn from ``request()``. A thread that runs past its last
request starts again from its first; ``done()`` prints how many requests were replays,
so a benchmark can refuse a figure that measured repeats (the webhook deduplicates
them: a repeat skips the database).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = r"""
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function split(line)
  local fields, start = {}, 1
  while true do
    local stop = string.find(line, "\t", start, true)
    if not stop then
      fields[#fields + 1] = string.sub(line, start)
      return fields
    end
    fields[#fields + 1] = string.sub(line, start, stop - 1)
    start = stop + 1
  end
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  requests = {}
  replays = 0
  index = 0
  local n = 0
  for line in io.lines(path) do
    if n % nthreads == id then
      local fields = split(line)
      local method, target = string.match(fields[1], "^(%S+) (%S+)$")
      local headers = {}
      for i = 2, #fields - 1 do
        local name, value = string.match(fields[i], "^([^:]+): (.*)$")
        headers[name] = value
      end
      local body = fields[#fields]
      if body == "" then body = nil end
      requests[#requests + 1] = wrk.format(method, target, headers, body)
    end
    n = n + 1
  end
end

function request()
  index = index + 1
  if index > #requests then
    index = 1
  end
  return requests[index]
end

function response(status, headers, body)
  sent = (sent or 0) + 1
  if sent > #requests then
    replays = replays + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("replays") or 0)
  end
  io.write(string.format("replays %d\n", total))
  io.write(string.format("p50_us %d\np95_us %d\n", latency:percentile(50), latency:percentile(95)))
end
"""


class Failures(RuntimeError):
    """wrk saw non-2xx replies or socket errors."""


@dataclass(frozen=True)
class WrkResult:
    rate: float  # requests/s
    requests: int
    seconds: float
    replays: int
    p50_ms: float
    p95_ms: float


def write_requests(path: Path, lines: list[str]) -> Path:
    for line in lines:
        if "\n" in line:
            raise ValueError("a request line holds a newline")
    path.write_text("\n".join(lines) + "\n")
    return path


def line(method: str, target: str, headers: dict[str, str], body: str = "") -> str:
    fields = [f"{method} {target}", *(f"{name}: {value}" for name, value in headers.items())]
    if any("\t" in field for field in [*fields, body]):
        raise ValueError("a request field holds a tab")
    return "\t".join([*fields, body])


def run(
    url: str,
    requests_file: Path,
    workdir: Path,
    *,
    seconds: float,
    connections: int = 16,
    threads: int = 2,
    allow_replays: bool = False,
) -> WrkResult:
    """wrk for ``seconds``; raises RuntimeError on any non-2xx reply, socket error, or
    (unless ``allow_replays``) a request sent twice."""
    script = workdir / "replay.lua"
    if not script.exists():
        script.write_text(LUA)
    output = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
            "--",
            str(requests_file),
            str(threads),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
    replays = re.search(r"^replays (\d+)$", output, re.M)
    p50 = re.search(r"^p50_us (\d+)$", output, re.M)
    p95 = re.search(r"^p95_us (\d+)$", output, re.M)
    if not (rate and count and replays and p50 and p95):
        raise RuntimeError(f"wrk output not understood: {output}")
    if "Non-2xx" in output or "Socket errors" in output:
        raise Failures(f"wrk saw failures against {url}: {output}")
    if int(replays.group(1)) and not allow_replays:
        raise RuntimeError(
            f"wrk ran out of distinct requests ({replays.group(1)} replays) against {url}"
        )
    elapsed = float(count.group(2)) / (1000 if count.group(3) == "ms" else 1)
    return WrkResult(
        rate=float(rate.group(1)),
        requests=int(count.group(1)),
        seconds=elapsed,
        replays=int(replays.group(1)),
        p50_ms=int(p50.group(1)) / 1000,
        p95_ms=int(p95.group(1)) / 1000,
    )
