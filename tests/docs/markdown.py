"""The fenced blocks of the repository's Markdown, with the docs test's annotations.

Why a module of its own: the docs test (``tests/docs/test_docs.py``) decides what to run
from what this module reads, so the reading rules live in one place and are tested on
small strings (``tests/docs/test_markdown.py``), not only through the real documents.

The convention, visible in the Markdown itself (docs/contracts.md, "Docs that run"):

- Every fenced block names its language. ``bash`` (or ``sh``, ``shell``) blocks are
  commands and run; any other language (``text``, ``json``, ``python``, ...) is shown,
  not run.
- An HTML comment on the line before the opening fence annotates it (blank lines in
  between are allowed)::

      <!-- docs-test: skip (needs AWS credentials) -->
      <!-- docs-test: run timeout=600 -->
      <!-- docs-test: server -->
      <!-- docs-test: output -->

  ``skip`` needs a reason in parentheses. ``run`` only adds options (``timeout=SECONDS``,
  ``store=champion``). ``server`` and ``output`` are described in the test module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell"})
KINDS = frozenset({"run", "skip", "server", "output"})
OPTIONS = frozenset({"timeout", "store"})
STORES = frozenset({"empty", "champion"})

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:(?P<body>.*?)-->\s*$")
_BODY = re.compile(r"^\s*(?P<kind>[a-z-]+)(?P<options>(?:\s+[a-z]+=\S+)*)\s*(?:\((?P<reason>.*)\))?\s*$")


class DocsConventionError(ValueError):
    """A Markdown file breaks the docs test's convention (the message names file:line)."""


@dataclass(frozen=True)
class Directive:
    """What a ``<!-- docs-test: ... -->`` comment asks of the block below it."""

    kind: str
    reason: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def timeout_s(self) -> float | None:
        return float(self.options["timeout"]) if "timeout" in self.options else None

    @property
    def store(self) -> str:
        return self.options.get("store", "empty")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts, its language, its text and its annotation."""

    path: Path
    line: int
    """1-based line of the opening fence."""
    language: str
    text: str
    directive: Directive | None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return self.language in SHELL_LANGUAGES

    @property
    def kind(self) -> str:
        """``run``, ``skip``, ``server`` or ``output``; a shell block runs unless told."""
        if self.directive is not None:
            return self.directive.kind
        return "run" if self.is_shell else "shown"


def parse_directive(body: str, where: str) -> Directive:
    """Read ``KIND [key=value ...] [(reason)]``; raise naming ``where`` when malformed."""
    match = _BODY.match(body)
    if match is None:
        raise DocsConventionError(f"{where}: cannot read docs-test annotation {body.strip()!r} (expected KIND [key=value] [(reason)])")
    kind, reason = match["kind"], (match["reason"] or "").strip()
    if kind not in KINDS:
        raise DocsConventionError(f"{where}: unknown docs-test kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    options = dict(item.split("=", 1) for item in match["options"].split())
    unknown = set(options) - OPTIONS
    if unknown:
        raise DocsConventionError(f"{where}: unknown docs-test option(s) {sorted(unknown)} (known: {sorted(OPTIONS)})")
    if "timeout" in options:
        try:
            if float(options["timeout"]) <= 0:
                raise ValueError
        except ValueError:
            raise DocsConventionError(f"{where}: timeout must be a positive number of seconds, got {options['timeout']!r}") from None
    if options.get("store", "empty") not in STORES:
        raise DocsConventionError(f"{where}: store must be one of {sorted(STORES)}, got {options['store']!r}")
    if kind == "skip" and not reason:
        raise DocsConventionError(f"{where}: a skipped block must say why: <!-- docs-test: skip (REASON) -->")
    return Directive(kind=kind, reason=reason, options=options)


def read_blocks(path: Path, text: str | None = None) -> list[Block]:
    """Every fenced block of ``path`` (or of ``text``, reported as ``path``), in order.

    Raises :class:`DocsConventionError` for an unclosed fence, an annotation that is not
    followed by a fence, or a malformed annotation.
    """
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    pending: tuple[int, Directive] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = _DIRECTIVE.match(line)
        if directive is not None:
            if pending is not None:
                raise DocsConventionError(f"{path}:{pending[0]}: docs-test annotation is not followed by a fenced block")
            pending = (index + 1, parse_directive(directive["body"], f"{path}:{index + 1}"))
            index += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if line.strip() and pending is not None:
                raise DocsConventionError(f"{path}:{pending[0]}: docs-test annotation is not followed by a fenced block")
            index += 1
            continue
        marker, language = fence["fence"], fence["info"].strip().split(" ")[0]
        closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}\s*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if end == len(lines):
            raise DocsConventionError(f"{path}:{index + 1}: fenced block is never closed")
        blocks.append(Block(path, index + 1, language, "\n".join(lines[index + 1:end]) + "\n",
                            pending[1] if pending else None))
        pending = None
        index = end + 1
    if pending is not None:
        raise DocsConventionError(f"{path}:{pending[0]}: docs-test annotation is not followed by a fenced block")
    return blocks


def output_matches(expected: str, actual: str) -> str | None:
    """Check that ``expected``'s lines appear in ``actual``, in order; ``None`` when they do.

    Lines are compared without surrounding whitespace. A line that is only ``...`` stands
    for lines left out (any lines may come between two expected lines anyway); ``...``
    inside a line matches any text there, so a doc can leave out what changes from run to
    run (a timing, a temporary path, a request id) and keep what it quotes. Returns the
    first expected line that could not be found, with the line number in ``expected``.
    """
    actual_lines = [line.strip() for line in actual.splitlines()]
    position = 0
    for number, raw in enumerate(expected.splitlines(), start=1):
        wanted = raw.strip()
        if not wanted or wanted == "...":
            continue
        pattern = re.compile(".*?".join(re.escape(part) for part in wanted.split("...")) + r"\Z", re.DOTALL)
        while position < len(actual_lines) and not pattern.match(actual_lines[position]):
            position += 1
        if position == len(actual_lines):
            return f"line {number}: {wanted!r}"
        position += 1
    return None
