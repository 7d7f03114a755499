"""The repository's own conventions: lint configuration, pre-commit hooks and the locks.

``make lint`` runs ruff and mypy in CI; ruff is fast enough to run here too, so a
finding fails the test suite where a developer sees it first. mypy (about a minute
cold) stays in ``make lint`` only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", str(ROOT)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, f"ruff findings (fix them or justify a noqa):\n{result.stdout}{result.stderr}"


def test_ruff_reports_a_defect_it_is_configured_for(tmp_path: Path) -> None:
    """The configuration is read (not silently skipped): a bugbear finding is reported."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x=[]):\n    return x\n")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", str(bad)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "B006" in result.stdout
