"""The docs test's reading of Markdown (tests/docs/markdown.py), on small documents.

What runs, what is skipped and what is compared is decided here, so each rule, and each
way an annotation is refused, is shown on a string rather than only through the real docs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import DocsConventionError, output_matches, read_blocks


def _doc(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_a_document_is_read_as_the_reader_sees_it() -> None:
    text = _doc(
        "Intro.", "",
        "<!-- docs-test: skip (needs AWS) -->", "```bash", "pulumi up", "```", "",
        "```bash", "echo hi", "```", "",
        "<!-- docs-test: output -->", "", "```text", "h...", "```",
        "```python", "x = 1", "```",
        "<!-- docs-test: server timeout=60 store=champion -->", "```bash", "make serve", "```",
    )
    blocks = read_blocks(Path("doc.md"), text)
    assert [(b.line, b.language, b.kind) for b in blocks] == [
        (4, "bash", "skip"), (8, "bash", "run"), (14, "text", "output"), (17, "python", "shown"), (21, "bash", "server")]
    assert blocks[0].directive.reason == "needs AWS" and blocks[1].text == "echo hi\n"
    assert (blocks[4].directive.timeout_s, blocks[4].directive.store) == (60.0, "champion")


@pytest.mark.parametrize(("annotation", "why"), [
    ("<!-- docs-test: skip -->", "must say why"),
    ("<!-- docs-test: skip () -->", "must say why"),
    ("<!-- docs-test: sometimes -->", "unknown docs-test kind 'sometimes'"),
    ("<!-- docs-test: run retries=3 -->", "unknown docs-test option"),
    ("<!-- docs-test: run timeout=soon -->", "timeout must be a positive number"),
    ("<!-- docs-test: run timeout=0 -->", "timeout must be a positive number"),
    ("<!-- docs-test: run store=prod -->", "store must be one of"),
])
def test_a_malformed_annotation_is_refused_naming_its_line(annotation: str, why: str) -> None:
    with pytest.raises(DocsConventionError, match=why) as refused:
        read_blocks(Path("doc.md"), _doc("text", annotation, "```bash", "true", "```"))
    assert str(refused.value).startswith("doc.md:2:")


def test_an_annotation_must_sit_on_the_block_it_annotates() -> None:
    with pytest.raises(DocsConventionError, match="doc.md:1: docs-test annotation is not followed by a fenced block"):
        read_blocks(Path("doc.md"), _doc("<!-- docs-test: skip (needs AWS) -->", "A paragraph in between.", "```bash", "true", "```"))
    with pytest.raises(DocsConventionError, match="not followed by a fenced block"):
        read_blocks(Path("doc.md"), _doc("```bash", "true", "```", "<!-- docs-test: skip (needs AWS) -->"))


def test_an_unclosed_fence_is_refused() -> None:
    with pytest.raises(DocsConventionError, match="doc.md:2: fenced block is never closed"):
        read_blocks(Path("doc.md"), _doc("text", "```bash", "true"))


def test_a_longer_fence_holds_a_shorter_one() -> None:
    (block,) = read_blocks(Path("doc.md"), _doc("````markdown", "```bash", "true", "```", "````"))
    assert block.language == "markdown" and block.text == "```bash\ntrue\n```\n"


def test_output_lines_are_found_in_order_with_ellipses() -> None:
    printed = "note: new store\n[1/2] ingest: done (2.9s)\n[2/2] deploy: done (20.1s)\nOutcome: promoted\n"
    assert output_matches("[1/2] ingest: done (...)\n...\nOutcome: promoted\n", printed) is None
    assert output_matches("Outcome: promoted\n[1/2] ingest: done (...)\n", printed) == "line 2: '[1/2] ingest: done (...)'"
    assert output_matches('{"probabilities": [0.01...]}', '{"probabilities": [0.14]}') == """line 1: '{"probabilities": [0.01...]}'"""
    assert output_matches("Outcome: refused\n", printed) == "line 1: 'Outcome: refused'"
