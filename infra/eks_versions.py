"""The EKS Kubernetes versions the platform may run, each with its dated support window.

EKS keeps a minor version in standard support for 14 months after its release, then
moves it to extended support (12 more months at an extra hourly price per cluster), and
a version whose standard support has ended can no longer be picked for a new cluster
without paying for it. An allow-list without dates rots silently: it kept offering
1.31 after it could no longer be created at the standard price. Here each version
carries the day its standard support ends (the EKS version calendar, docs.aws.amazon.com
/eks/latest/userguide/kubernetes-versions.html), and ``refusal`` judges a version on the
day of the run, so a stack that has not been upgraded in time fails ``pulumi preview``
with the date instead of sliding into extended-support pricing.

Each version also pins what must move with it: the cluster autoscaler's image (its
minor must equal the cluster's) and the kubectl the delivery stages install (within one
minor of the API server, Kubernetes' version-skew policy).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class EksVersion:
    """One Kubernetes minor on EKS: its standard-support window and the pinned clients."""

    minor: str
    released: dt.date
    standard_support_ends: dt.date
    autoscaler_tag: str
    """cluster-autoscaler image tag of the same minor (registry.k8s.io/autoscaling)."""
    kubectl: str
    """kubectl release the delivery stages install (dl.k8s.io/release/v<kubectl>)."""


EKS_VERSIONS: dict[str, EksVersion] = {v.minor: v for v in (
    EksVersion("1.33", dt.date(2025, 5, 28), dt.date(2026, 7, 29), "v1.33.0", "1.33.4"),
    EksVersion("1.34", dt.date(2025, 10, 6), dt.date(2026, 12, 2), "v1.34.0", "1.34.1"),
    EksVersion("1.35", dt.date(2026, 1, 28), dt.date(2027, 3, 27), "v1.35.0", "1.35.0"),
)}
"""The EKS release calendar for the versions still worth listing (older ones are long
out of standard support). Add the next minor here, with its dates, when EKS ships it."""


def today_utc() -> dt.date:
    """The date of the run, in UTC (EKS's support dates are UTC calendar days)."""
    return dt.datetime.now(dt.UTC).date()


def in_standard_support(on: dt.date) -> list[str]:
    """Minors in standard support on ``on`` (released, and standard support not ended)."""
    return [v.minor for v in EKS_VERSIONS.values()
            if v.released <= on < v.standard_support_ends]


def refusal(minor: str, on: dt.date) -> str | None:
    """Why ``minor`` cannot be used for a cluster on ``on``; None when it can."""
    allowed = ", ".join(in_standard_support(on)) or "none: add the current minor to infra/eks_versions.py"
    version = EKS_VERSIONS.get(minor)
    if version is None:
        return f"{minor!r} is not a known EKS version (in standard support on {on}: {allowed})"
    if on >= version.standard_support_ends:
        return (f"{minor} left EKS standard support on {version.standard_support_ends} "
                f"(extended-support pricing); in standard support on {on}: {allowed}")
    if on < version.released:
        return f"{minor} is not released on EKS before {version.released}"
    return None


def version(minor: str) -> EksVersion:
    """The table entry of a minor; KeyError names the minor when it is not listed."""
    try:
        return EKS_VERSIONS[minor]
    except KeyError:
        raise KeyError(f"EKS version {minor!r} is not in infra/eks_versions.py") from None
