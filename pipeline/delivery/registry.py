"""The registry side of a release: ``candidate`` names what is being released, ``champion``
what was released.

The delivery path's register step (SageMaker) sets ``candidate`` on a version that
passed the gate; nothing serves it yet. ``champion`` moves only at the end of the
release, after the approval, the canary and the smoke test, and only by
compare-and-set (:func:`promote_if_unchanged`): if ``champion`` no longer names the
version the candidate was gated against, someone else released in between and this
release is refused rather than overwriting theirs. MLflow has no atomic
compare-and-set on aliases, so the check-then-set runs under the release lease
(``pipeline.delivery.lease``), which every release path takes.
The laptop loop (``python -m pipeline run``) still moves ``champion`` at register and
rolls it back in the same process (:func:`restore_champion`): its deploy is local and
synchronous.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHAMPION = "champion"
CANDIDATE = "candidate"
OUTCOME_TAG = "release_outcome"
"""Model version tag: how the version's release ended (``released``, ``rejected: ...``)."""


class ChampionMoved(RuntimeError):
    """``champion`` no longer names the version a release expected: another release won."""


@dataclass(frozen=True)
class Champion:
    """The version the alias points at and the serving image its lineage names, if any."""

    model_name: str
    version: str
    image_digest: str | None


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def current_champion(tracking_uri: str, model_name: str, alias: str = CHAMPION) -> Champion | None:
    """The alias's version, or None when the model or alias does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        version = _client(tracking_uri).get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower():
            return None
        raise
    return Champion(model_name, str(version.version), (version.tags or {}).get("image_digest"))


def restore_champion(tracking_uri: str, model_name: str, previous_version: str | None, alias: str = CHAMPION) -> str:
    """Point the alias back at ``previous_version`` (delete it when None); says what it did."""
    client = _client(tracking_uri)
    if previous_version is None:
        client.delete_registered_model_alias(model_name, alias)
        return f"{model_name}@{alias} removed (nothing served before)"
    client.set_registered_model_alias(model_name, alias, previous_version)
    return f"{model_name}@{alias} moved back to version {previous_version}"


def alias_version(tracking_uri: str, model_name: str, alias: str) -> str | None:
    """The version ``alias`` names, or None."""
    found = current_champion(tracking_uri, model_name, alias)
    return found.version if found else None


def promote_if_unchanged(tracking_uri: str, model_name: str, *, expected: str | None, version: str) -> str:
    """Move ``champion`` to ``version`` only if it still names ``expected`` (None: unset).

    Idempotent: a retried finish whose first attempt already moved the alias is a
    success. Raises :class:`ChampionMoved` naming both versions otherwise, with nothing
    changed.
    """
    current = alias_version(tracking_uri, model_name, CHAMPION)
    if current == version:
        return f"{model_name}@{CHAMPION} already names version {version}"
    if current != expected:
        raise ChampionMoved(
            f"{model_name}@{CHAMPION} names version {current or 'nothing'}, not {expected or 'nothing'} as when version "
            f"{version} was gated: another release promoted in between; version {version} is not promoted (re-run the "
            f"pipeline to gate it against the new champion)"
        )
    _client(tracking_uri).set_registered_model_alias(model_name, CHAMPION, version)
    return f"{model_name}@{CHAMPION} moved from version {expected or 'nothing'} to {version}"


def close_candidate(tracking_uri: str, model_name: str, version: str, outcome: str) -> str:
    """Record how ``version``'s release ended and drop ``candidate`` if it still names it.

    A later push may already have set ``candidate`` on its own version: that one is
    left alone.
    """
    client = _client(tracking_uri)
    client.set_model_version_tag(model_name, version, OUTCOME_TAG, outcome[:4900])
    if alias_version(tracking_uri, model_name, CANDIDATE) == version:
        client.delete_registered_model_alias(model_name, CANDIDATE)
        return f"{model_name}@{CANDIDATE} removed (was version {version})"
    return f"{model_name}@{CANDIDATE} left as is (it does not name version {version})"
