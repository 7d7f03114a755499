"""Reading a dataset file (CSV or Parquet) into a frame, with a clear error when it cannot be read.

The ingest step and the ``step``/``synth`` commands share this so that every entry point
accepts the same formats: ``.csv`` (plain, ``.gz``, ``.bz2``, ``.xz``, ``.zst``) and
``.parquet``/``.pq``. Values are read as they are, never coerced: deciding whether a
column has the right type is validation's job, and it needs to see the file's own types
to say what is wrong.

Everything that can go wrong with the file itself is a ``DataLoadError`` (exit 4 with a
validation report), never a crash: a truncated or corrupt compressed file, a header that
names a column twice (pandas would silently rename the second ``age.1``), and data larger
than ``MAX_DATA_BYTES`` once decompressed. Compressed CSV is decompressed as a stream
and counted as it goes, so a 20 MB gzip bomb that expands to 2 GiB stops at the cap
instead of at the machine's memory.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import pandas as pd

MAX_DATA_BYTES: Final = int(os.environ.get("MLOPS_MAX_DATA_BYTES", 1 << 30))
"""Largest dataset accepted, in bytes of CSV text (after decompression) or of Parquet
column data (uncompressed); 1 GiB, about 250 times the default dataset. Override with
``MLOPS_MAX_DATA_BYTES``."""

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.xz")
PARQUET_SUFFIXES = (".parquet", ".pq")


class DataLoadError(ValueError):
    """The file cannot be read as a dataset (missing, empty, unknown format, corrupt)."""


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise DataLoadError(
        f"{path}: unknown data format; expected one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )


class _CountingReader(io.RawIOBase):
    """A read-only stream that raises once more than ``limit`` bytes have come through."""

    def __init__(self, inner: io.BufferedIOBase | io.RawIOBase, limit: int, path: Path) -> None:
        self.inner, self.limit, self.path, self.count = inner, limit, path, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.count += len(data)
        if self.count > self.limit:
            raise DataLoadError(
                f"{self.path}: more than {self.limit:,} bytes of data once decompressed (MAX_DATA_BYTES); "
                "refused before it exhausts memory"
            )
        buffer[: len(data)] = data
        return len(data)


def _decompressed(path: Path) -> io.BufferedIOBase | io.RawIOBase:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    if name.endswith(".zst"):
        return _ZstdReader(path)
    return path.open("rb")


class _ZstdReader(io.RawIOBase):
    """Zstandard decompression that notices a truncated frame (``stream_reader`` just stops)."""

    def __init__(self, path: Path) -> None:
        import zstandard

        self.file = path.open("rb")
        self.inner = zstandard.ZstdDecompressor().decompressobj()
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            chunk = self.file.read(1 << 20)
            if not chunk:
                if not self.inner.eof:
                    raise EOFError("zstd frame ended before its end marker (truncated file)")
                return 0
            self.pending = self.inner.decompress(chunk)
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size

    def close(self) -> None:
        self.file.close()
        super().close()


@contextmanager
def _csv_stream(path: Path, limit: int) -> Iterator[IO[bytes]]:
    raw = _decompressed(path)
    try:
        yield io.BufferedReader(_CountingReader(raw, limit, path), buffer_size=1 << 20)
    finally:
        raw.close()


def _decompression_errors() -> tuple[type[BaseException], ...]:
    """What a truncated or corrupt compressed file raises, by codec."""
    errors: list[type[BaseException]] = [EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def _duplicate_header(path: Path, limit: int) -> list[str]:
    """Column names the CSV header gives more than once."""
    with _csv_stream(path, limit) as stream:
        first = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="").readline()
    names = next(csv.reader([first]), [])
    seen: set[str] = set()
    repeated = []
    for name in names:
        if name in seen:
            repeated.append(name)
        seen.add(name)
    return list(dict.fromkeys(repeated))


def _check_parquet(path: Path, limit: int) -> None:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if size > limit:
        raise DataLoadError(f"{path}: {size:,} bytes of column data uncompressed, more than {limit:,} (MAX_DATA_BYTES)")
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataLoadError(f"{path}: column name(s) given more than once: {', '.join(duplicates)}")


def load_dataset(path: Path, *, max_bytes: int | None = None) -> pd.DataFrame:
    """Read ``path`` (CSV or Parquet, chosen by suffix) into a frame.

    Raises ``DataLoadError`` naming the file when it does not exist, is empty, has no
    header, names a column twice, is larger than ``max_bytes`` (default
    ``MAX_DATA_BYTES``) once decompressed, or is not valid CSV/Parquet (a truncated or
    corrupt compressed file included), so the runner can report invalid data rather
    than crash.
    """
    import pandas as pd

    limit = MAX_DATA_BYTES if max_bytes is None else max_bytes
    kind = _kind(path)
    if not path.is_file():
        raise DataLoadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataLoadError(f"{path}: the file is empty (0 bytes)")
    try:
        if kind == "csv":
            duplicates = _duplicate_header(path, limit)
            if duplicates:
                raise DataLoadError(
                    f"{path}: the header names column(s) more than once: {', '.join(duplicates)} "
                    "(which one holds the data would be a guess)"
                )
            with _csv_stream(path, limit) as stream:
                return pd.read_csv(stream, low_memory=False)
        _check_parquet(path, limit)
        return pd.read_parquet(path)
    except DataLoadError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise DataLoadError(f"{path}: the file is empty (no header, no rows)") from exc
    except _decompression_errors() as exc:
        raise DataLoadError(f"{path}: truncated or corrupt compressed data: {type(exc).__name__}: {exc}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataLoadError(f"{path}: cannot be read as {kind}: {exc}") from exc


def write_dataset(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV or Parquet, chosen by the suffix of ``path``; returns ``path``."""
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path
