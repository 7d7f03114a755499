"""Run a container the way a Kubernetes pod spec from the offline plan says to.

The serving pod's spec is read from ``python -m infra.plan``'s ``kubernetes.yaml`` (the
manifests ``pulumi up`` applies) and turned into podman options: the user and group,
``readOnlyRootFilesystem``, dropped capabilities, no privilege escalation, the pod's
volumes (``emptyDir`` as tmpfs, ``secret`` as read-only files owned by ``fsGroup`` with
the secret's mode) and the container's env and args. Only what cannot exist here is
overridden, by name: the listen address (loopback) and port, and endpoints that name
in-cluster hosts, so nothing is resolved or sent off this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from pipeline.schema import REPO_ROOT


@lru_cache(maxsize=2)
def plan_manifests(stack: str, out_dir: str) -> tuple[dict[str, Any], ...]:
    """Every Kubernetes object of ``stack``'s offline plan."""
    subprocess.run([sys.executable, "-m", "infra.plan", "--stack", stack, "--out", out_dir],
                   cwd=REPO_ROOT, check=True, capture_output=True, timeout=600)
    return tuple(doc for doc in yaml.safe_load_all((Path(out_dir) / "kubernetes.yaml").read_text()) if doc)


def pod_template(manifests: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    for doc in manifests:
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc["spec"]["template"]["spec"]
    raise LookupError(f"no {kind} {name!r} in the plan")


@dataclass(frozen=True)
class PodRun:
    """podman options, environment and arguments for one container of a pod spec."""

    options: list[str]
    env: dict[str, str]
    args: list[str]
    container: dict[str, Any]


def podman_run_for(pod: dict[str, Any], container_name: str, workdir: Path,
                   secrets: dict[str, dict[str, str]]) -> PodRun:
    """Translate ``pod``'s ``container_name`` container; ``secrets`` gives each secret's data."""
    (container,) = [c for c in pod["containers"] if c["name"] == container_name]
    pod_ctx, ctx = pod.get("securityContext", {}), container.get("securityContext", {})
    uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup", uid))
    fs_group = pod_ctx.get("fsGroup")
    options: list[str] = []
    if uid is not None:
        options += ["--user", f"{uid}:{gid}"]
    if fs_group is not None:
        options += ["--group-add", str(fs_group)]
    if ctx.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    for cap in ctx.get("capabilities", {}).get("drop", []):
        options += ["--cap-drop", cap]
    if ctx.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            # emptyDir: world-writable, like the kubelet makes it.
            options += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777,size=1g"]
        elif "secret" in volume:
            folder = workdir / f"secret-{volume['name']}"
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
            for key, value in secrets[volume["secret"]["secretName"]].items():
                path = folder / key
                path.write_text(value)
                os.chown(path, 0, int(fs_group or 0))
                path.chmod(volume["secret"].get("defaultMode", 0o644))
            options += ["-v", f"{folder}:{mount['mountPath']}:ro"]
        else:
            raise NotImplementedError(f"volume {volume['name']} of an unsupported kind")
    env = {item["name"]: str(item.get("value", "")) for item in container.get("env", []) if "valueFrom" not in item}
    return PodRun(options=options, env=env, args=list(container.get("args", [])), container=container)


def with_arg(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with ``flag``'s value replaced (or appended)."""
    out = list(args)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out
