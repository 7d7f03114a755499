"""Content digests: how the pipeline names a data version, a step's code and its cache key.

A data version is the SHA-256 of a canonical serialisation of the frame (column names,
dtypes and every value, row order included), so the same rows read from CSV or Parquet
get the same digest and any edited cell gets a new one (docs/contracts.md, "Data").
File and source digests use only the standard library, because the runner's cached
path must not import pandas.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes: the cheap identity of an input file on the cached path."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's columns, dtypes and values, independent of the file format.

    Values are hashed with pandas' stable per-row hash (``hash_pandas_object``) so the
    digest is fast on large frames; the index is ignored because it is an artefact of
    how the file was read, not part of the data.
    """
    import pandas as pd

    sha = hashlib.sha256()
    sha.update(json.dumps([[str(c), str(frame[c].dtype)] for c in frame.columns]).encode())
    sha.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return sha.hexdigest()


def json_digest(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value with sorted keys: the digest of parameters."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def source_digest(paths: Iterable[Path]) -> str:
    """SHA-256 over the source files that implement a step, so editing them busts its cache."""
    sha = hashlib.sha256()
    for path in sorted(set(paths)):
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def combine(parts: Mapping[str, str]) -> str:
    """One SHA-256 from named digests (order-independent): a cache key from its parts."""
    return json_digest(dict(parts))
