"""The repository cites only what it contains: no notes kept elsewhere, no machine paths.

A reader of a clone has the repository and nothing else. A comment that sends them to a
design note or a rules file that lives outside it (a sibling ``shared/`` folder, a
``DESIGN.md`` the repository does not ship) or to a path on one developer's machine
explains nothing; what such a note says belongs in docs/ in the repository's own words.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FOREIGN = {
    "../shared": "a folder beside the checkout",
    "shared/reference/": "a folder beside the checkout",
    "DESIGN.md": "a design note the repository does not ship (say it in docs/ or the README)",
    "safety-rules.md": "a rules file the repository does not ship (docs/infra.md states the rules)",
    "environment.md": "a note on the build machine the repository does not ship",
    "/work/": "a path on a development machine",
    "/home/": "a path on a development machine",
    "/Users/": "a path on a development machine",
}
"""Text that points outside the repository, and why each is refused."""

SELF = Path(__file__).resolve()


def _tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError) as exc:  # an export without .git
        pytest.skip(f"cannot list the tracked files with git: {exc}")
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_no_file_cites_what_the_repository_does_not_contain() -> None:
    found = []
    for path in _tracked_files():
        if path.resolve() == SELF or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary data (the dataset, images)
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for needle, why in FOREIGN.items():
                if needle in line:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {needle!r} ({why})")
    assert not found, "the repository points outside itself:\n" + "\n".join(found)


def test_the_check_finds_a_citation() -> None:
    """The scan above is only worth something if it can see one: a line that cites."""
    line = "see ../shared/reference/safety-rules.md"
    assert [needle for needle in FOREIGN if needle in line] == ["../shared", "shared/reference/", "safety-rules.md"]
