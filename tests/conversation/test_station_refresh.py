"""`whatsapp-handler stations refresh`, offline: tarballs built here, no npm."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tools import cli
from tools.commands import stations as refresh

DATA = refresh.DATA_DIR
SHIPPED = (DATA / "stations.csv").read_bytes()


def tarball(
    csv: bytes = SHIPPED,
    *,
    package: dict[str, str] | None = None,
    leave_out: str | None = None,
) -> bytes:
    files = {
        "package/stations.csv": csv,
        "package/LICENSE": b"## ODC Open Database License (ODbL)\n",
        "package/package.json": json.dumps(
            package or {"name": "uk-railway-stations", "version": "9.9.9", "license": "ODbL-1.0"}
        ).encode(),
        "package/README.md": b"# readme\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            if name == leave_out:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_a_good_release_is_read_byte_for_byte() -> None:
    release = refresh.read_release(tarball())
    assert release.version == "9.9.9"
    assert release.station_count == 2608
    assert release.stations_csv == SHIPPED


def without(code: str) -> bytes:
    return b"".join(
        line for line in SHIPPED.splitlines(keepends=True) if f",{code},".encode() not in line
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            tarball(SHIPPED.splitlines(keepends=True)[0] + b"Leeds,53.7,-1.5,LDS,,england\n"),
            "fewer",
        ),
        (tarball(b"name,crs\nLeeds,LDS\n"), "header"),
        (tarball(SHIPPED + b"Leeds Again,53.7,-1.5,LDS,,england\n"), "repeated"),
        (tarball(SHIPPED + b"Nowhere,53.7,-1.5,nw1,,england\n"), "malformed"),
        (tarball(SHIPPED + b"Nowhere,north,-1.5,NWX,,england\n"), "line 2610"),
        (tarball(without("KGX")), "KGX, which is not in the list"),  # our "kings x" alias
        (tarball(package={"name": "uk-railway-stations", "license": "MIT"}), "ODbL"),
        (tarball(leave_out="package/LICENSE"), "lacks package/LICENSE"),
        (b"not a tarball", "."),
    ],
)
def test_a_bad_release_is_refused(bad: bytes, reason: str) -> None:
    with pytest.raises((ValueError, tarfile.TarError), match=reason):
        refresh.read_release(bad)


def test_the_command_writes_the_data_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "uk-railway-stations-9.9.9.tgz"
    source.write_bytes(tarball())
    out = tmp_path / "data"
    out.mkdir()
    (out / "STATIONS_NOTICE.md").write_text("from the package version 1.11.1 (link)\n")

    assert cli.main(["stations", "refresh", "--tarball", str(source), "--out", str(out)]) == 0

    assert (out / "stations.csv").read_bytes() == SHIPPED
    assert (out / "STATIONS_LICENSE.md").read_bytes().startswith(b"## ODC Open Database")
    assert (out / "STATIONS_NOTICE.md").read_text() == "from the package version 9.9.9 (link)\n"
    assert "2608 stations" in capsys.readouterr().out


def test_the_command_writes_nothing_when_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.tgz"
    source.write_bytes(tarball(b"name,crs\n"))
    out = tmp_path / "data"

    assert cli.main(["stations", "refresh", "--tarball", str(source), "--out", str(out)]) == 1

    assert not out.exists()
    assert "header" in capsys.readouterr().err


def test_the_shipped_notice_names_the_shipped_version_and_the_licence() -> None:
    notice = (DATA / "STATIONS_NOTICE.md").read_text(encoding="utf-8")
    assert "version 1.11.1" in notice and "ODbL" in notice and "Trainline" in notice
    assert (
        (DATA / "STATIONS_LICENSE.md")
        .read_text(encoding="utf-8")
        .startswith("## ODC Open Database License")
    )
