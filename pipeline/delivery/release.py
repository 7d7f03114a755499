"""What one release ships: the Train stage's ``release.json``, read by every later stage.

Every stage after Train acts on the version this file names, never on a live alias:
the prod approver approves this execution, Deploy canaries exactly this version, and
SmokeTest promotes exactly this version, by compare-and-set against the champion it
was gated against (``base_champion``). A later push that registers its own candidate in
between changes none of that. The reader validates everything before anything is
touched: a missing or malformed file is a refusal naming each problem.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

SCHEMA: Final = 1
_VERSION = re.compile(r"^\d+$")
_DIGEST_IMAGE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


class ReleaseFileError(ValueError):
    """``release.json`` is missing or malformed; no stage may act on it."""


@dataclass(frozen=True)
class Release:
    """One candidate on its way to ``champion``.

    ``release_id`` identifies the release everywhere (the SageMaker execution ARN on
    AWS, a run id locally): the lease holder, the outcome tag. ``base_champion`` is the
    champion the gate judged against (None: the first model); ``image`` is the serving
    image by digest, or None to use the version's ``image_digest`` tag.
    """

    release_id: str
    model_name: str
    version: str
    base_champion: str | None
    image: str | None
    git_commit: str

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA, **asdict(self)}, indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path


def parse_release(text: str, source: str = "release file") -> Release:
    """Validate and parse; every problem is named in one error."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReleaseFileError(f"{source} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ReleaseFileError(f"{source} must be a JSON object, got {type(data).__name__}")
    problems = []
    if data.get("schema") != SCHEMA:
        problems.append(f"schema {data.get('schema')!r} is not {SCHEMA}")
    for key in ("release_id", "model_name", "git_commit"):
        if not isinstance(data.get(key), str) or not data[key]:
            problems.append(f"{key} is missing")
    if not _VERSION.match(str(data.get("version") or "")):
        problems.append(f"version {data.get('version')!r} is not a version number")
    base = data.get("base_champion")
    if base is not None and not _VERSION.match(str(base)):
        problems.append(f"base_champion {base!r} is neither null nor a version number")
    if base is not None and str(base) == str(data.get("version")):
        problems.append(f"base_champion equals version {base}: a release cannot replace itself")
    image = data.get("image")
    if image is not None and not _DIGEST_IMAGE.match(str(image)):
        problems.append(f"image {image!r} is not referenced by digest (repo@sha256:...)")
    if problems:
        raise ReleaseFileError(f"{source} refused: " + "; ".join(problems))
    return Release(str(data["release_id"]), str(data["model_name"]), str(data["version"]),
                   None if base is None else str(base), None if image is None else str(image), str(data["git_commit"]))


def read_release(path: Path) -> Release:
    """Read and validate ``path``; a missing file is a refusal too."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ReleaseFileError(f"cannot read release file {path}: {exc.strerror or exc}") from exc
    return parse_release(text, str(path))


def release_from_registry(tracking_uri: str, model_name: str, version: str, *, release_id: str, git_commit: str,
                          image: str | None = None) -> Release:
    """The release of ``version``: the champion it was gated against comes from its
    ``gate_champion`` tag (written by the register step), the image from ``image`` or its
    ``image_digest`` tag. Refuses a version the gate did not pass."""
    from mlflow import MlflowClient

    from pipeline.registry import GATE_CHAMPION_TAG

    tags = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_model_version(model_name, version).tags or {}
    if tags.get("gate_passed") != "true":
        raise ReleaseFileError(f"{model_name} v{version} did not pass the gate (gate_passed={tags.get('gate_passed')!r}); it cannot be released")
    if GATE_CHAMPION_TAG not in tags:
        raise ReleaseFileError(f"{model_name} v{version} has no {GATE_CHAMPION_TAG} tag: which champion it was gated against is unknown")
    base = tags[GATE_CHAMPION_TAG]
    return Release(release_id, model_name, str(version), None if base == "none" else base, image or tags.get("image_digest"), git_commit)


REGISTRATION_FILE: Final = "registration.json"


def registration_uri(artifacts_s3_prefix: str, execution_arn: str) -> str:
    """Where an execution's register step wrote ``registration.json`` (the compiler's layout)."""
    from pipeline.sagemaker_compiler import STEP_REGISTER

    if not artifacts_s3_prefix.startswith("s3://"):
        raise ValueError(f"artifacts prefix {artifacts_s3_prefix!r} is not an s3:// URI")
    execution_id = execution_arn.rsplit("/", 1)[-1]
    return f"{artifacts_s3_prefix.rstrip('/')}/{execution_id}/{STEP_REGISTER}/registered/{REGISTRATION_FILE}"


def registered_version(text: str, source: str) -> str:
    """The version a register step's ``registration.json`` names; refuses one the gate did not pass."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReleaseFileError(f"{source} is not JSON: {exc}") from exc
    version = str(data.get("version", "")) if isinstance(data, dict) else ""
    if not _VERSION.match(version):
        raise ReleaseFileError(f"{source}: version {version!r} is not a version number")
    if data.get("promoted") is not True:
        raise ReleaseFileError(f"{source}: v{version} was registered but not made a candidate (the gate refused it)")
    return version
