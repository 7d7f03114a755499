"""The registry side of a deploy: read the ``champion`` alias, move it back on rollback.

Deploys fire only when ``champion`` moves: the deploy stage compares the alias's
version with what is serving and does nothing when they agree. A rollback moves the
alias back to what was serving before, in one ``set_registered_model_alias`` call
(docs/contracts.md: ``champion`` moves last, in one call), or deletes it when nothing
served before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHAMPION = "champion"


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
