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


def _pre_commit(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PRE_COMMIT_HOME": str(home / "pre-commit")}
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], capture_output=True, text=True,
                          timeout=120, cwd=repo, env=env)


def test_pre_commit_config_is_valid_and_offline(tmp_path: Path) -> None:
    """Every hook is local and runs a tool the venv has: nothing is cloned from a hook repo."""
    import yaml

    path = ROOT / ".pre-commit-config.yaml"
    assert _pre_commit(ROOT, tmp_path, "validate-config", str(path)).returncode == 0
    config = yaml.safe_load(path.read_text())
    hooks = [(repo["repo"], hook) for repo in config["repos"] for hook in repo["hooks"]]
    assert {hook["id"] for _, hook in hooks} == {"ruff", "mypy"}
    for repo, hook in hooks:
        assert (repo, hook["language"]) == ("local", "system"), hook["id"]
        executable = hook["entry"].split()[0]
        assert executable.startswith(".venv/bin/"), f"{hook['id']}: {executable} is not the venv's tool"
        assert (Path(sys.executable).parent / Path(executable).name).exists(), f"{executable} is not installed"


def test_pre_commit_ruff_hook_stops_a_commit_with_a_finding(tmp_path: Path) -> None:
    """The ruff hook, run by pre-commit in a scratch repository, refuses a file with an
    unused import and passes once it is fixed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in (".pre-commit-config.yaml", "pyproject.toml"):
        (repo / name).write_text((ROOT / name).read_text())
    (repo / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (repo / "module.py").write_text("import os\n")
    git = {"cwd": repo, "check": True, "capture_output": True, "timeout": 30}
    subprocess.run(["git", "init", "-q"], **git)
    subprocess.run(["git", "add", "module.py", "pyproject.toml", ".pre-commit-config.yaml"], **git)

    refused = _pre_commit(repo, tmp_path, "run", "ruff", "--all-files")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "F401" in refused.stdout and "module.py:1:8" in refused.stdout

    (repo / "module.py").write_text("import os\n\nprint(os.sep)\n")
    subprocess.run(["git", "add", "module.py"], **git)
    passed = _pre_commit(repo, tmp_path, "run", "ruff", "--all-files")
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_every_lock_pins_every_package_with_hashes() -> None:
    """Each lock `make` installs from names one version and its sha256 hashes per package,
    and `make` installs it with --require-hashes (a tampered download is refused)."""
    import re

    makefile = (ROOT / "Makefile").read_text()
    for name in ("requirements.lock", "requirements-checkov.lock", "requirements-parliament.lock"):
        text = (ROOT / name).read_text()
        # One requirement per block: "name==version \" followed by its "--hash=" lines.
        blocks = re.split(r"\n(?=[A-Za-z0-9])", re.sub(r"^(#.*\n)+", "", text))
        assert blocks, name
        for block in blocks:
            requirement = block.split()[0]
            assert "==" in requirement, f"{name}: {requirement} is not pinned to one version"
            assert "--hash=sha256:" in block, f"{name}: {requirement} has no hash"
        assert re.search(rf"pip sync [^\n]*--require-hashes[^\n]*{re.escape(name)}", makefile), \
            f"the Makefile installs {name} without --require-hashes"
    # The images install from their own hashed locks (compiled by `make lock`).
    for dockerfile, name in (("serving/Dockerfile", "serving/requirements.lock"), ("training/Dockerfile", "training/requirements.lock"),
                             ("infra/mlflow/Dockerfile", "infra/mlflow/requirements.lock")):
        text = (ROOT / name).read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9])", re.sub(r"^(#.*\n)+", "", text))
        assert all("==" in b.split()[0] and "--hash=sha256:" in b for b in blocks), f"{name} pins without hashes"
        assert re.search(rf"pip install [^\n]*--require-hashes -r \S*{re.escape(name.rsplit('/', 1)[-1])}", (ROOT / dockerfile).read_text()), \
            f"{dockerfile} installs without --require-hashes from {name}"
        lock_recipe = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
        assert name.rsplit("/", 1)[0] in lock_recipe, f"`make lock` does not compile {name}"
