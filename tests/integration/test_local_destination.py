"""A local destination's files leave the page cache as they are written: byob runs next to the
vendor's database, whose cache a bulk export must not flush out."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from byob.destinations.local import WRITE_BEHIND_BYTES, LocalDestination

MIB = 1 << 20


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding `path` (the longest mount point above it)."""
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if str(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


def _resident_bytes(path: Path) -> int:
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
@pytest.mark.skipif(shutil.which("fincore") is None, reason="util-linux's fincore is missing")
@pytest.mark.skipif(
    _filesystem(Path(tempfile.gettempdir()).resolve()) in ("tmpfs", "ramfs"),
    reason="the temporary directory is in memory: its files cannot leave the page cache",
)
def test_a_committed_file_is_whole_and_not_left_in_the_page_cache(tmp_path: Path) -> None:
    chunk = os.urandom(MIB)
    size = 8 * WRITE_BEHIND_BYTES + 5 * MIB  # several write-behinds and a remainder
    writer = LocalDestination(tmp_path).open_writer("m/dt=2026-12-03/1_20261203000000.parquet")
    digest = hashlib.sha256()
    written = 0
    while written < size:
        writer.write(chunk)
        digest.update(chunk)
        written += len(chunk)
    (partial,) = tmp_path.glob("m/dt=2026-12-03/.*.partial")
    # Written out and dropped as it went, the last write-behinds' pages aside (still being
    # written when they were asked to go); without it every page would still be cached.
    assert _resident_bytes(partial) <= size // 2
    assert writer.commit() == written

    (final,) = tmp_path.glob("m/dt=2026-12-03/*.parquet")
    assert _resident_bytes(final) <= MIB  # the commit's fsync wrote the rest: dropped too
    assert hashlib.sha256(final.read_bytes()).hexdigest() == digest.hexdigest()
    assert not list(tmp_path.rglob("*.partial"))
