"""What a cluster deploy replaced, written by ``deliver deploy`` for ``deliver smoke-test``.

The SmokeTest stage runs after Argo promoted the canary, in another CodeBuild job: by
then the Rollout serves the new model and nothing on the cluster says what served
before. If the smoke test fails (or ``champion`` moved meanwhile), the workload must go
back, so the Deploy stage writes this small JSON file as a pipeline artifact
(``deployment`` -> ``deployment.json``) and the SmokeTest stage reads it. It holds the
served container exactly as it was (``previous_container``): restoring that makes the
pod template hash as before, which Argo recognises (see ``pipeline.delivery.rollout``).
The reader validates everything before anything is touched: a missing or malformed
record is a refusal with a clear message, never a half-restored release.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from pipeline.delivery.rollout import RolloutTarget, Serving

SCHEMA: Final = 2
ACTIONS: Final = ("canaried", "already-serving")
_DIGEST_IMAGE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_VERSION = re.compile(r"^\d+$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class DeploymentRecordError(ValueError):
    """The record is missing or malformed; nothing may be restored from it."""


@dataclass(frozen=True)
class DeploymentRecord:
    """One deploy: which Rollout, what it now serves, and what it served before.

    ``previous`` and ``previous_container`` are None when the deploy changed nothing
    (``already-serving``): a failing smoke test then has no workload to restore.
    ``release_id`` ties the record to its release (``pipeline.delivery.release``).
    """

    action: str
    model_name: str
    target: RolloutTarget
    deployed: Serving
    previous: Serving | None
    release_id: str = ""
    previous_container: dict[str, Any] | None = None

    def to_json(self) -> str:
        """The artifact's text (schema 1)."""
        return json.dumps({
            "schema": SCHEMA, "action": self.action, "model_name": self.model_name,
            "rollout": asdict(self.target), "deployed": asdict(self.deployed),
            "previous": asdict(self.previous) if self.previous else None,
            "release_id": self.release_id, "previous_container": self.previous_container,
        }, indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> Path:
        """Write the artifact (the Deploy stage's output, declared in deploy.yml)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path


def _serving(value: Any, where: str, problems: list[str]) -> Serving | None:
    if not isinstance(value, dict):
        problems.append(f"{where} must be an object with model_name, model_version, image")
        return None
    name, version, image = (str(value.get(k) or "") for k in ("model_name", "model_version", "image"))
    if not name:
        problems.append(f"{where}.model_name is missing")
    if not _VERSION.match(version):
        problems.append(f"{where}.model_version {value.get('model_version')!r} is not a version number")
    if not _DIGEST_IMAGE.match(image):
        problems.append(f"{where}.image {value.get('image')!r} is not referenced by digest")
    return Serving(name, version, image)


def parse_record(text: str, source: str = "deployment record") -> DeploymentRecord:
    """Validate and parse the record; every problem is named in one error."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeploymentRecordError(f"{source} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DeploymentRecordError(f"{source} must be a JSON object, got {type(data).__name__}")
    problems: list[str] = []
    if data.get("schema") != SCHEMA:
        problems.append(f"schema {data.get('schema')!r} is not {SCHEMA}")
    action = data.get("action")
    if action not in ACTIONS:
        problems.append(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    model_name = str(data.get("model_name") or "")
    if not model_name:
        problems.append("model_name is missing")
    rollout = data.get("rollout")
    target: RolloutTarget | None = None
    if not isinstance(rollout, dict):
        problems.append("rollout must be an object with name, namespace, container, template_kind")
    else:
        for key in ("name", "namespace", "container"):
            if not _K8S_NAME.match(str(rollout.get(key) or "")):
                problems.append(f"rollout.{key} {rollout.get(key)!r} is not a Kubernetes name")
        try:
            target = RolloutTarget(name=str(rollout.get("name")), namespace=str(rollout.get("namespace")),
                                   container=str(rollout.get("container")),
                                   template_kind=str(rollout.get("template_kind", "deployment")),
                                   port=int(rollout.get("port", 8080)))
        except (TypeError, ValueError) as exc:
            problems.append(f"rollout: {exc}")
    deployed = _serving(data.get("deployed"), "deployed", problems)
    release_id = str(data.get("release_id") or "")
    if not release_id:
        problems.append("release_id is missing")
    previous, container = None, data.get("previous_container")
    if action == "canaried":
        previous = _serving(data.get("previous"), "previous", problems)
        if not isinstance(container, dict) or not container.get("name"):
            problems.append("previous_container must be the container object the deploy replaced")
        elif target is not None and container.get("name") != target.container:
            problems.append(f"previous_container is {container.get('name')!r}, not the rollout's container {target.container!r}")
    elif data.get("previous") is not None or container is not None:
        problems.append("previous and previous_container must be null when the deploy changed nothing")
    if problems or target is None or deployed is None:
        raise DeploymentRecordError(f"{source} refused: " + "; ".join(problems))
    return DeploymentRecord(str(action), model_name, target, deployed, previous, release_id,
                            container if isinstance(container, dict) else None)


def read_record(path: Path) -> DeploymentRecord:
    """Read and validate the artifact at ``path``; a missing file is a refusal too."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DeploymentRecordError(f"cannot read deployment record {path}: {exc.strerror or exc}") from exc
    return parse_record(text, str(path))
