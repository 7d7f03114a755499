"""Every command in README.md and docs/*.md runs as written, and what the docs quote is what it prints.

The shell blocks of each document run in order, as one reader would type them, in one
fresh store (``MLOPS_HOME`` in a temporary folder; the checkout's ``.mlops/`` is never
touched) from the repository root, each under ``bash -e -o pipefail`` and its own timeout.
The annotations (``tests/docs/markdown.py``; the convention is in docs/contracts.md,
"Docs that run") say what else to do:

- ``skip (REASON)``: not run (AWS, a cluster, the Pulumi CLI, root); the reason is shown
  beside the block and is required.
- ``server``: the block's first command serves in the foreground (a reader runs the rest
  in a second terminal). Here it starts in the background on a free port (the documented
  ``127.0.0.1:8080`` is replaced by that port and ``SAGEMAKER_BIND_TO_PORT`` set), the
  rest runs once ``/ping`` answers 200 naming the store's champion, version and run
  (bounded wait), and Ctrl-C
  (SIGINT to its process group) must stop it within a bound.
- ``output``: a text block that is the output of the nearest run block above it; its lines
  must appear in that output in order (``...`` matches anything), so figures the doc
  quotes (a probability, a verdict's numbers) are the ones the commands print today.
- ``run timeout=S``: a longer bound; ``store=champion``: the document's store starts
  with a champion (a copy of one ``python -m pipeline run --no-deploy``, made once).

A block must not leave processes behind (its process group is checked, then killed). No
traffic leaves the machine: the blocks call 127.0.0.1 only, and HTTP(S) proxies point at
a closed loopback port so a stray call fails rather than reaching the network.

Cost (2 cores): the structural checks take well under a second; the documents that run
are marked ``slow``. Measured on the shared 2-core machine at load average 5-7: 11.6 min
for everything (the drift scenario's block 284 s, README's ``make run`` 121 s, the
rehearsal 76 s (twice since: ~140 s quiet), the offline plans 49 s + 74 s, the champion store and two server starts
the rest); each block is bounded by its timeout. ``pytest -rA tests/docs`` prints each
block's time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.local_store import LocalStore
from pipeline.registry import current_champion
from pipeline import schema
from tests.docs.markdown import Block, Directive, output_matches, read_blocks

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [Path("README.md"), *sorted(p.relative_to(ROOT) for p in (ROOT / "docs").glob("*.md"))]
DEFAULT_TIMEOUT_S = 300.0
SERVER_READY_S = 120.0
"""Bound on the wait for a ``server`` block's first ``/ping`` 200 (the model loads first)."""
SERVER_STOP_S = 15.0
DOCUMENTED_PORT = "8080"

REQUIRED_RUNS = {
    # What a newcomer does first, and every scenario the docs tell them to try locally.
    "README.md": ["make run", "make serve", "python -m infra.plan --stack prod"],
    "docs/serving.md": ["make serve"],
    "docs/monitoring.md": ["pipeline monitor --retrain --retrain-data fresh.csv"],
    "docs/infra.md": ["python -m infra.plan --stack dev"],
}
"""Commands that must sit in blocks the test runs (not skipped), by document."""


def _blocks(document: Path) -> list[Block]:
    return read_blocks(document, (ROOT / document).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------
# The convention itself (fast)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", DOCUMENTS, ids=str)
def test_every_block_names_its_language_and_every_skip_its_reason(document: Path) -> None:
    """An untagged block could hide a command from this test; a bare skip hides why."""
    blocks = _blocks(document)  # raises naming file:line for a skip without a reason
    untagged = [block.where for block in blocks if not block.language]
    assert not untagged, f"fenced blocks without a language (bash runs; text, json, python... are shown): {untagged}"
    for block in blocks:
        if block.kind == "server":
            assert block.is_shell, f"{block.where}: a server block must be bash"
        if block.kind == "skip":
            assert block.is_shell, f"{block.where}: only shell blocks run, so only they can be skipped"
            assert len(block.directive.reason) >= 10, f"{block.where}: say why it is skipped: {block.directive.reason!r}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=str)
def test_output_blocks_follow_a_block_that_runs(document: Path) -> None:
    """An output block is checked against the run above it; after a skip it would not be."""
    previous: Block | None = None
    for block in _blocks(document):
        if block.kind == "output":
            assert not block.is_shell, f"{block.where}: an output block is text, not commands"
            assert previous is not None and previous.kind in ("run", "server"), (
                f"{block.where}: an output block must follow a block that runs "
                f"(the one above is {previous.where + ' (' + previous.kind + ')' if previous else 'missing'})")
        if block.is_shell:
            previous = block


_FIGURE = re.compile(r"(?<![\w.])\d+\.\d+")


def _list_after(document: Path, block: Block) -> list[tuple[int, str]]:
    """The list items that read an output block: from its closing fence to the next
    heading or fence, the lines of ``- `` items and their continuations."""
    lines = (ROOT / document).read_text(encoding="utf-8").splitlines()
    index = block.line + len(block.text.splitlines()) + 1  # past the closing fence
    items, in_item = [], False
    for number in range(index, len(lines)):
        line = lines[number]
        if line.startswith(("#", "```", "<!--")):
            break
        if line.startswith("- "):
            in_item = True
        elif not line.startswith("  "):
            in_item = False
        if in_item:
            items.append((number + 1, line))
    return items


@pytest.mark.parametrize("document", DOCUMENTS, ids=str)
def test_figures_read_from_an_output_block_are_in_it(document: Path) -> None:
    """The list that explains a checked output quotes its figures, not numbers typed by
    hand from an older run: each decimal figure there must appear in the block above."""
    for block in _blocks(document):
        if block.kind != "output":
            continue
        for number, line in _list_after(document, block):
            for figure in _FIGURE.findall(line):
                assert figure in block.text, (f"{document}:{number}: {figure} is not in the output block at "
                                              f"{block.where}, which the docs test checks")


def test_the_default_models_figures_are_the_checked_ones() -> None:
    """docs/pipeline.md quotes the default model's figures from the drift scenario's
    checked output (its first gate report) rather than from a run nobody repeats."""
    text = (ROOT / "docs/pipeline.md").read_text(encoding="utf-8")
    sentence = text[text.index("On the default data the default model"):].split("checks.")[0]
    figures = _FIGURE.findall(sentence)
    assert len(figures) == 3, f"expected ROC AUC and two fairness figures in {sentence!r}"
    (scenario,) = [b for b in _blocks(Path("docs/monitoring.md")) if b.kind == "output"]
    first_report = scenario.text[scenario.text.index("**Decision: PROMOTE**"):scenario.text.index("**Decision: REFUSED**")]
    for figure in figures:
        assert figure in first_report, f"docs/pipeline.md quotes {figure}, not in the scenario's first gate report"


def test_the_quick_start_and_each_local_scenario_run() -> None:
    """Skipping is for what needs AWS or root: the local paths must be among the blocks run."""
    for document, commands in REQUIRED_RUNS.items():
        running = [b.text for b in _blocks(Path(document)) if b.kind in ("run", "server")]
        for command in commands:
            assert any(command in text for text in running), f"{document}: no block that runs {command!r}"


# ---------------------------------------------------------------------------------------
# Running the documents (slow)
# ---------------------------------------------------------------------------------------


@dataclass
class Ran:
    """What one block printed (stdout and stderr together) and how it ended."""

    block: Block
    code: int
    output: str
    seconds: float


def _free_port() -> int:
    from serving.process import free_port

    return free_port()


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    scratch = home.parent / f"{home.name}-tmp"
    scratch.mkdir(exist_ok=True)
    env.update({
        "MLOPS_HOME": str(home),
        "TMPDIR": str(scratch),  # a block's mktemp lands beside its store and goes with it
        "PYTHONUNBUFFERED": "1",
    })
    # Loopback only: a proxy on a closed local port makes any other HTTP(S) call fail fast.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env[name] = "http://127.0.0.1:9"
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost,::1"
    # Nor does the test's own setting leak in: a block runs as in a fresh shell (under
    # `make test`, make's own variables would otherwise reach the blocks' `make run`).
    for name in ("MLFLOW_TRACKING_URI", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    return env


def _stop_group(process: subprocess.Popen, sig: int, bound_s: float) -> bool:
    """Signal the process group; True when every member is gone within ``bound_s``."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _run_script(block: Block, script: str, env: dict[str, str], workdir: Path) -> Ran:
    """Run ``script`` as ``bash -e -o pipefail`` in its own process group, bounded."""
    timeout = (block.directive.timeout_s if block.directive else None) or DEFAULT_TIMEOUT_S
    path = workdir / f"block-{block.line}.sh"
    path.write_text(script, encoding="utf-8")
    log = workdir / f"block-{block.line}.log"
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(["bash", "-e", "-o", "pipefail", str(path)], cwd=ROOT, env=env,
                                   stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(process, signal.SIGKILL, 10)
            process.wait()
            pytest.fail(f"{block.where}: did not finish within {timeout:g} s; output:\n{_tail(log)}")
    if _group_alive(process.pid):
        _stop_group(process, signal.SIGKILL, 10)
        pytest.fail(f"{block.where}: exited {code} and left processes running (a server not stopped?); output:\n{_tail(log)}")
    seconds = time.monotonic() - started
    print(f"{block.where}: exit {code} in {seconds:.1f} s")  # shown by pytest -rA: what each block costs
    return Ran(block, code, log.read_text(encoding="utf-8", errors="replace"), seconds)


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _first_command(text: str) -> tuple[str, str]:
    """Split a server block into its first command and the rest."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            return line, "\n".join(lines[index + 1:]) + "\n"
    raise AssertionError("a server block needs a command")


def _wait_for_ping(block: Block, server: subprocess.Popen, port: int, log: Path) -> dict:
    """``/ping`` 200 from this server process, within the bound; its body."""
    deadline = time.monotonic() + SERVER_READY_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"{block.where}: the server exited ({server.returncode}) before /ping answered:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                if response.status == 200:
                    return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"{block.where}: /ping did not answer 200 within {SERVER_READY_S:g} s:\n{_tail(log)}")


def _run_server_block(block: Block, env: dict[str, str], workdir: Path) -> Ran:
    port = _free_port()
    text = re.sub(rf"(127\.0\.0\.1|localhost):{DOCUMENTED_PORT}\b", rf"\g<1>:{port}", block.text)
    first, rest = _first_command(text)
    assert DOCUMENTED_PORT not in first + rest, f"{block.where}: port {DOCUMENTED_PORT} left where it cannot be replaced"
    server_env = dict(env, SAGEMAKER_BIND_TO_PORT=str(port))
    log = workdir / f"server-{block.line}.log"
    started = time.monotonic()
    with log.open("wb") as sink:
        server = subprocess.Popen(["bash", "-c", first], cwd=ROOT, env=server_env, stdout=sink, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        ping = _wait_for_ping(block, server, port, log)
        print(f"{block.where}: /ping 200 after {time.monotonic() - started:.1f} s: {ping}")
        # Which model answered: the store's champion (its run), not some other server on the port.
        champion = current_champion(LocalStore(Path(env["MLOPS_HOME"])).tracking_uri, schema.DEFAULT_MODEL_NAME)
        assert champion is not None, f"{block.where}: the store has no champion to serve"
        answered = (ping.get("model_name"), ping.get("model_version"), ping.get("run_id"))
        assert answered == (schema.DEFAULT_MODEL_NAME, champion.version, champion.run_id), (
            f"{block.where}: /ping says {answered}, the store's champion is v{champion.version} from run {champion.run_id}")
        ran = _run_script(block, rest, env, workdir)
    finally:
        stopped = _stop_group(server, signal.SIGINT, SERVER_STOP_S)
        if not stopped:
            _stop_group(server, signal.SIGKILL, 5)
    assert stopped, f"{block.where}: Ctrl-C did not stop {first.split('#')[0].strip()!r} within {SERVER_STOP_S:g} s:\n{_tail(log)}"
    return ran


@pytest.fixture(scope="session")
def champion_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding a champion, as ``make run`` leaves it (deploy skipped: it is served below)."""
    home = tmp_path_factory.mktemp("docs-champion")
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--no-deploy"], cwd=ROOT, env=_environment(home),
                            capture_output=True, text=True, timeout=DEFAULT_TIMEOUT_S)
    assert result.returncode == 0, f"could not make the champion store:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return home


def _runnable_documents() -> Iterator[object]:
    for document in DOCUMENTS:
        blocks = _blocks(document)
        if any(b.kind in ("run", "server") for b in blocks):
            bound = sum(((b.directive.timeout_s if b.directive else None) or DEFAULT_TIMEOUT_S)
                        + (SERVER_READY_S + SERVER_STOP_S if b.kind == "server" else 0)
                        for b in blocks if b.kind in ("run", "server"))
            yield pytest.param(document, id=str(document), marks=[pytest.mark.slow, pytest.mark.timeout(bound + 2 * DEFAULT_TIMEOUT_S)])


@pytest.mark.parametrize("document", list(_runnable_documents()))
def test_document_runs_as_written(document: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Each shell block exits 0 in order, and each output block matches what ran above it."""
    blocks = _blocks(document)
    if any(re.search(r"^\s*make ", b.text, re.MULTILINE) for b in blocks if b.kind in ("run", "server")):
        # `make run` as written reinstalls .venv when the locks are newer than it: not
        # something a test should do behind the developer's back.
        fresh = subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT, capture_output=True, timeout=30)
        assert fresh.returncode == 0, (f"{document} runs make, and .venv is older than requirements.lock or "
                                       "pyproject.toml (make would reinstall it): run `make .venv/.installed` first")
    home = tmp_path / "mlops-home"
    if any(b.directive and b.directive.store == "champion" for b in blocks):
        shutil.copytree(request.getfixturevalue("champion_store"), home)
    else:
        home.mkdir()
    env = _environment(home)
    workdir = tmp_path / "blocks"
    workdir.mkdir()
    last: Ran | None = None
    for block in blocks:
        if block.kind == "run":
            last = _run_script(block, block.text, env, workdir)
        elif block.kind == "server":
            last = _run_server_block(block, env, workdir)
        elif block.kind == "output":
            assert last is not None, f"{block.where}: output block before any block ran"
            missing = output_matches(block.text, last.output)
            assert missing is None, (f"{block.where}: the doc quotes output that {last.block.where} did not print "
                                     f"({missing}); it printed:\n{last.output[-6000:]}")
            continue
        else:
            continue
        assert last.code == 0, f"{block.where}: exited {last.code}; output:\n{last.output[-6000:]}"


REHEARSAL_TIMEOUT_S = 600.0
"""Training a second version and a canary of two real servers: ~2 min alone on 2 cores."""


@pytest.mark.slow
@pytest.mark.timeout(2 * REHEARSAL_TIMEOUT_S + DEFAULT_TIMEOUT_S + 60)
def test_the_rehearsal_line_rehearses_a_release(champion_store: Path, tmp_path: Path) -> None:
    """docs/delivery.md's rehearse line, run twice on a store that already has a champion
    (as after ``make run``), must reach the canary both times: without ``--force`` the
    second rehearsal's pipeline stage found "nothing to do", the champion did not move and
    the canary was skipped, so rehearsing a release again rehearsed nothing."""
    lines = [line for block in _blocks(Path("docs/delivery.md")) if block.is_shell
             for line in block.text.splitlines() if "pipeline deliver rehearse" in line]
    assert len(lines) == 1, f"expected one rehearse line in docs/delivery.md, found {lines}"
    home = tmp_path / "mlops-home"
    shutil.copytree(champion_store, home)
    workdir = tmp_path / "blocks"
    workdir.mkdir()
    block = Block(Path("docs/delivery.md"), 0, "bash", lines[0] + "\n",
                  Directive("run", options={"timeout": str(REHEARSAL_TIMEOUT_S)}))
    for attempt in ("first", "second"):
        ran = _run_script(block, block.text, _environment(home), workdir)
        assert ran.code == 0, f"{attempt} rehearsal: {lines[0]!r} exited {ran.code}:\n{ran.output[-6000:]}"
        assert re.search(r"^\[\s*ok\] canary", ran.output, re.MULTILINE), (
            f"{attempt} rehearsal: the canary did not run:\n{ran.output[-6000:]}")
