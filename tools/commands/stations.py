"""whatsapp-handler stations refresh [--tarball FILE] [--out DIR]: renew the GB station list.

Runs ``npm pack uk-railway-stations`` in a temporary folder (or reads ``--tarball``, a
tarball already fetched), checks its ``package/stations.csv`` (the expected header,
well-formed three-letter CRS codes, no repeats, at least ``MIN_STATIONS`` rows, and every
alias of ours still naming a station), and writes ``stations.csv``,
``STATIONS_LICENSE.md`` and the version line of ``STATIONS_NOTICE.md`` into
shared/data/. The CSV is kept byte for byte (ODbL: we ship the database unmodified).
Nothing is written when a check fails. Review the diff and commit it.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import shared

NAME = "stations"
HELP = "refresh shared/data/stations.csv from the npm package uk-railway-stations"
PACKAGE = "uk-railway-stations"
MIN_STATIONS = 2000
MAX_MEMBER_BYTES = 5_000_000
DATA_DIR = Path(shared.__file__).resolve().parent / "data"  # shipped with the functions
_VERSION_LINE = re.compile(r"version [0-9][0-9A-Za-z.+-]*")


@dataclass(frozen=True)
class Release:
    version: str
    stations_csv: bytes
    license_text: bytes
    station_count: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    refresh = actions.add_parser("refresh", help=HELP, description=HELP)
    refresh.add_argument("--tarball", type=Path, help="read this npm tarball instead of npm pack")
    refresh.add_argument("--out", type=Path, default=DATA_DIR, help="the data folder to write")


def read_release(tarball: bytes) -> Release:
    """The checked contents of an npm tarball of uk-railway-stations; ValueError if bad."""
    from shared import stations

    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.name in ("package/stations.csv", "package/LICENSE", "package/package.json"):
                if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                    raise ValueError(f"{member.name} is not a plain file of a sensible size")
                extracted = archive.extractfile(member)
                if extracted is not None:
                    members[member.name] = extracted.read()
    missing = {"package/stations.csv", "package/LICENSE", "package/package.json"} - set(members)
    if missing:
        raise ValueError(f"the tarball lacks {', '.join(sorted(missing))}")
    package = json.loads(members["package/package.json"])
    if package.get("name") != PACKAGE or package.get("license") != "ODbL-1.0":
        raise ValueError("not uk-railway-stations under ODbL-1.0: licence terms may differ")
    rows = stations.read_stations_csv(members["package/stations.csv"].decode("utf-8"))
    if len(rows) < MIN_STATIONS:
        raise ValueError(f"only {len(rows)} stations, fewer than {MIN_STATIONS}")
    aliases = stations.read_aliases_csv(
        (DATA_DIR / stations.ALIASES_FILE).read_text(encoding="utf-8")
    )
    stations.StationIndex.from_rows(rows, aliases)  # raises if an alias lost its station
    return Release(
        version=str(package.get("version", "unknown")),
        stations_csv=members["package/stations.csv"],
        license_text=members["package/LICENSE"],
        station_count=len(rows),
    )


def write_release(release: Release, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "stations.csv").write_bytes(release.stations_csv)
    (out / "STATIONS_LICENSE.md").write_bytes(release.license_text)
    notice = out / "STATIONS_NOTICE.md"
    if notice.is_file():
        text = notice.read_text(encoding="utf-8")
        notice.write_text(
            _VERSION_LINE.sub(f"version {release.version}", text, count=1), encoding="utf-8"
        )


def _npm_pack(folder: Path) -> bytes:
    done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        ["npm", "pack", PACKAGE, "--silent"],  # noqa: S607 - npm from PATH, like a developer
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    name = done.stdout.strip().splitlines()[-1]
    return (folder / name).read_bytes()


def run(args: argparse.Namespace) -> int:
    try:
        if args.tarball is not None:
            tarball = args.tarball.read_bytes()
        else:
            with tempfile.TemporaryDirectory() as folder:
                tarball = _npm_pack(Path(folder))
        release = read_release(tarball)
    except (OSError, ValueError, subprocess.CalledProcessError, tarfile.TarError) as error:
        print(f"whatsapp-handler stations refresh: {error}", file=sys.stderr)
        return 1
    write_release(release, args.out)
    print(f"{PACKAGE} {release.version}: {release.station_count} stations written to {args.out}")
    return 0
