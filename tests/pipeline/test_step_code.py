"""A step's cache key covers every first-party module it imports, transitively.

Editing ``SLICE_COLUMNS`` in ``pipeline/schema.py`` once left evaluate served stale from
the cache, because its key named only ``pipeline.steps.evaluate`` and the wiring. (The
project configuration the schema reads joins every key by its own digest: the runner's.) These
tests edit a copy of the repository's packages (never the checkout itself) and compute
the runner's code digest there in a fresh interpreter.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.schema import REPO_ROOT
from pipeline.step_code import code_files
from pipeline.wiring import commit_pipeline

_DIGESTS = """
import json
from pipeline.digest import source_digest
from pipeline.step_code import code_files
from pipeline.wiring import commit_pipeline
print(json.dumps({s.name: source_digest(code_files(s.sources, s.run)) for s in commit_pipeline()}))
"""


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    for package in ("pipeline", "training", "serving"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _digests(root: Path) -> dict[str, str]:
    # PYTHONPATH first on sys.path: the copy shadows the checkout's editable install.
    out = subprocess.run(
        [sys.executable, "-c", _DIGESTS], cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(out.stdout)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}"
    path.write_text(text.replace(old, new))


def test_editing_an_imported_module_busts_evaluate_and_train(repo_copy: Path) -> None:
    before = _digests(repo_copy)
    _edit(repo_copy / "pipeline" / "schema.py", "SLICE_COLUMNS=tuple(project.slices),",
          "SLICE_COLUMNS=tuple(project.slices[:1]),")
    after = _digests(repo_copy)
    for step in ("validate", "split", "train", "evaluate", "gate"):
        assert before[step] != after[step], f"step {step} would be served stale after editing pipeline/schema.py"


def test_editing_one_steps_code_leaves_unrelated_steps_cached(repo_copy: Path) -> None:
    before = _digests(repo_copy)
    _edit(repo_copy / "pipeline" / "steps" / "register.py", "BASELINE_MAX_ROWS = 100_000", "BASELINE_MAX_ROWS = 90_000")
    after = _digests(repo_copy)
    assert before["register"] != after["register"]
    for step in ("ingest", "validate", "split", "train", "evaluate"):
        assert before[step] == after[step], f"editing register.py must not re-run {step}"


def test_imports_inside_functions_are_followed() -> None:
    steps = {s.name: s for s in commit_pipeline()}
    train = {p.relative_to(REPO_ROOT).as_posix() for p in code_files(steps["train"].sources, steps["train"].run)}
    # train_step imports training.train inside its body; training.train imports the schema.
    assert {"pipeline/wiring.py", "training/train.py", "training/model.py", "pipeline/schema.py"} <= train
    assert "pipeline/steps/register.py" not in train


def test_a_missing_declared_source_is_named() -> None:
    with pytest.raises(ImportError, match="pipeline.no_such_module"):
        code_files(["pipeline.no_such_module"])
