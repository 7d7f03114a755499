"""ECR image scan findings: the build stage's refusal to ship a critical vulnerability.

ECR scans on push (the ContainerRegistry component turns it on); the scan finishes a
little after the push, so the stage waits for it, then counts findings by severity and
refuses when any severity in ``fail_on`` (CRITICAL by default) has findings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.delivery.aws import make_client

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")


@dataclass(frozen=True)
class ScanResult:
    """Finding counts by severity for one image, and whether the stage may ship it."""

    repository: str
    digest: str
    counts: dict[str, int]
    blocking: dict[str, int]

    @property
    def passed(self) -> bool:
        return not self.blocking

    def render(self) -> str:
        counts = ", ".join(f"{s}={self.counts.get(s, 0)}" for s in SEVERITIES if self.counts.get(s))
        verdict = "ok" if self.passed else "REFUSED (" + ", ".join(f"{n} {s}" for s, n in self.blocking.items()) + ")"
        return f"{self.repository}@{self.digest}: {counts or 'no findings'}: {verdict}"


def judge_findings(repository: str, digest: str, counts: dict[str, int], fail_on: Iterable[str] = ("CRITICAL",)) -> ScanResult:
    """Pure verdict on finding counts; refuses unknown severities in ``fail_on``."""
    wanted = tuple(s.upper() for s in fail_on)
    unknown = [s for s in wanted if s not in SEVERITIES]
    if unknown:
        raise ValueError(f"unknown severities {unknown}; choose from {', '.join(SEVERITIES)}")
    blocking = {s: counts[s] for s in wanted if counts.get(s, 0) > 0}
    return ScanResult(repository=repository, digest=digest, counts=dict(counts), blocking=blocking)


def scan_findings(
    repository: str,
    digest: str,
    *,
    fail_on: Iterable[str] = ("CRITICAL",),
    timeout_s: float = 600.0,
    poll_s: float = 10.0,
    client: Any = None,
    endpoint_url: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ScanResult:
    """Wait for the image's scan to finish and judge its findings.

    Raises ``TimeoutError`` when the scan is still running after ``timeout_s`` and
    ``RuntimeError`` when ECR reports the scan itself failed: an unscanned image is not
    shipped.
    """
    if not digest.startswith("sha256:"):
        raise ValueError(f"image digest {digest!r} must look like sha256:<hex>")
    client = client or make_client("ecr", endpoint_url=endpoint_url)
    start = clock()
    while True:
        try:
            response = client.describe_image_scan_findings(repositoryName=repository, imageId={"imageDigest": digest})
        except client.exceptions.ScanNotFoundException:
            response = {"imageScanStatus": {"status": "PENDING"}}
        status = response.get("imageScanStatus", {}).get("status", "PENDING")
        if status in ("COMPLETE", "ACTIVE"):
            break
        if status in ("FAILED", "UNSUPPORTED_IMAGE", "FINDINGS_UNAVAILABLE"):
            detail = response["imageScanStatus"].get("description", "")
            raise RuntimeError(f"ECR scan of {repository}@{digest} ended {status}: {detail}")
        if clock() - start >= timeout_s:
            raise TimeoutError(f"ECR scan of {repository}@{digest} still {status} after {timeout_s:.0f} s")
        sleep(poll_s)
    findings = response.get("imageScanFindings", {})
    counts = {str(k).upper(): int(v) for k, v in findings.get("findingSeverityCounts", {}).items()}
    return judge_findings(repository, digest, counts, fail_on)


def pushed_digest(repository: str, tag: str, *, client: Any = None, endpoint_url: str | None = None) -> str | None:
    """The digest of ``repository:tag`` when ECR already holds that tag, else None.

    The repositories are tag-immutable and BuildImages tags with the commit: a tag that
    exists was built from this commit's Dockerfiles by an earlier attempt (a retried
    stage, or the drift-retrain trigger re-running the same commit). Pushing again
    would be refused, so the stage reuses what is there."""
    client = client or make_client("ecr", endpoint_url=endpoint_url)
    try:
        return image_digest(repository, tag, client=client)
    except (client.exceptions.ImageNotFoundException, LookupError):
        return None


def image_digest(repository: str, tag: str, *, client: Any = None, endpoint_url: str | None = None) -> str:
    """The digest ECR holds for ``repository:tag`` (what later stages reference)."""
    client = client or make_client("ecr", endpoint_url=endpoint_url)
    details = client.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    if not details:
        raise LookupError(f"no image {repository}:{tag} in ECR")
    return str(details[0]["imageDigest"])
