"""``python -m pipeline deliver rehearse``: the whole release path, locally, on every CI run.

The stages mirror the DeliveryPipeline's: image scan (ECR), the SageMaker pipeline
execution, the commit pipeline with its gate, the canary deploy beside the current
champion, and the smoke test. The two AWS stages run against whatever endpoint is
given (moto on 127.0.0.1 in CI) and are skipped without one; the rest run for real on
the embedded default. It follows the release states of the cluster path
(``pipeline.delivery.deploy_cluster``): the pipeline stage registers a ``candidate``
(``champion`` does not move), the canary runs it beside the champion under the
release lease, and only a passing analysis and smoke test move ``champion``, by
compare-and-set. A failed stage stops every stage after it, names itself and why, and
the registry's aliases end where they began, so the previous champion keeps serving.
Each stage's outcome is printed as it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.delivery.canary import CanaryConfig
from pipeline.delivery.errors import StageFailed
from pipeline.exit_codes import ExitCode

STAGES = ("build-images", "train-sagemaker", "pipeline", "canary", "smoke-test")


@dataclass(frozen=True)
class StageOutcome:
    """One stage's result: ``ok``, ``failed``, ``skipped`` or ``not-run``, and why."""

    stage: str
    status: str
    detail: str
    seconds: float = 0.0

    def render(self) -> str:
        mark = {"ok": "ok", "failed": "FAILED", "skipped": "skipped", "not-run": "not run"}[self.status]
        timing = f" ({self.seconds:.1f} s)" if self.seconds else ""
        return f"[{mark:>7}] {self.stage}{timing}: {self.detail}"


@dataclass
class RehearsalConfig:
    """What the rehearsal runs against. ``run_config`` is a ``pipeline.runner.RunConfig``.

    ``aws_endpoint`` (moto on 127.0.0.1) enables the scan and SageMaker stages:
    ``images`` are ``(repository, tag)`` pairs already in ECR, ``sagemaker_pipeline`` a
    pipeline created there. ``sagemaker_client``/``alarm_check``/``smoke_test`` let a
    test or a person inject a double or a fault into exactly one stage.
    """

    run_config: Any
    canary: CanaryConfig
    replay_data: Path
    log_dir: Path
    replay_requests: int = 200
    windows: int = 3
    aws_endpoint: str | None = None
    images: Sequence[tuple[str, str]] = ()
    fail_on: Sequence[str] = ("CRITICAL",)
    sagemaker_pipeline: str | None = None
    sagemaker_timeout_s: float = 600.0
    sagemaker_poll_s: float = 5.0
    sagemaker_client: Any = None
    alarm_names: Sequence[str] = ()
    alarm_check: Callable[[], Sequence[str]] | None = None
    smoke_test: Callable[[str, str], Any] | None = None
    git_commit: str = "local"


@dataclass(frozen=True)
class RehearsalResult:
    """Every stage's outcome, the exit code, and the aliases before and after."""

    outcomes: tuple[StageOutcome, ...]
    exit_code: ExitCode
    aliases_before: dict[str, str]
    aliases_after: dict[str, str]

    @property
    def failed_stage(self) -> StageOutcome | None:
        return next((o for o in self.outcomes if o.status == "failed"), None)


def aliases(tracking_uri: str, model_name: str) -> dict[str, str]:
    """``{alias: version}`` of the registered model ({} when it does not exist)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        model = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_registered_model(model_name)
    except MlflowException:
        return {}
    return {str(k): str(v) for k, v in (model.aliases or {}).items()}


def restore_aliases(tracking_uri: str, model_name: str, before: dict[str, str]) -> None:
    """Put every alias back to ``before``: moved ones reset, new ones deleted."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    now = aliases(tracking_uri, model_name)
    # champion last, in one call each, as docs/contracts.md asks of promotions.
    for alias in sorted(set(now) | set(before), key=lambda a: a == "champion"):
        if alias in before and now.get(alias) != before[alias]:
            client.set_registered_model_alias(model_name, alias, before[alias])
        elif alias not in before:
            client.delete_registered_model_alias(model_name, alias)


def _stage_build_images(config: RehearsalConfig) -> str:
    from pipeline.delivery.ecr_scan import image_digest, scan_findings

    if not config.aws_endpoint or not config.images:
        raise _Skip("no container registry endpoint (local images are not built); pass --endpoint-url and --image")
    lines, refused = [], []
    for repository, tag in config.images:
        digest = image_digest(repository, tag, endpoint_url=config.aws_endpoint)
        result = scan_findings(repository, digest, fail_on=config.fail_on, endpoint_url=config.aws_endpoint, poll_s=1.0, timeout_s=60)
        lines.append(result.render())
        if not result.passed:
            refused.append(result.render())
    if refused:
        raise StageFailed("build-images", "scan findings block the release: " + "; ".join(refused))
    return "; ".join(lines)


def _stage_train_sagemaker(config: RehearsalConfig) -> str:
    from pipeline.delivery import sagemaker_runs

    if not (config.aws_endpoint or config.sagemaker_client) or not config.sagemaker_pipeline:
        raise _Skip("no SageMaker endpoint or pipeline name; the local pipeline stage trains instead")
    client = config.sagemaker_client
    arn = sagemaker_runs.start_execution(config.sagemaker_pipeline, {"GitCommit": config.git_commit}, client=client, endpoint_url=config.aws_endpoint)
    try:
        result = sagemaker_runs.wait_for_execution(arn, timeout_s=config.sagemaker_timeout_s, poll_s=config.sagemaker_poll_s, client=client, endpoint_url=config.aws_endpoint)
    except sagemaker_runs.ExecutionFailed as exc:
        refusal = sagemaker_runs.gate_refusal_reason({}, exc.reason)
        if refusal is not None:
            raise StageFailed("train-sagemaker", f"gate refused the challenger: {refusal}", ExitCode.GATE_REFUSED) from exc
        raise StageFailed("train-sagemaker", str(exc)) from exc
    return f"{arn} {result.status} after {result.polls} poll(s)"


class _Skip(Exception):
    """A stage that does not apply here (no AWS endpoint); not a failure."""


def rehearse(config: RehearsalConfig, print_line: Callable[[str], None] = print) -> RehearsalResult:
    """Run every stage in order, stop at the first failure, restore the registry on failure.

    Returns the outcomes and the exit code a CodeBuild stage would have returned
    (``GATE_REFUSED``, ``DEPLOY_FAILED`` or ``ERROR``); the aliases after a failure
    equal the aliases before it.
    """
    import dataclasses
    import uuid

    from pipeline.delivery import registry
    from pipeline.delivery.lease import LeaseBusy, ReleaseLease
    from pipeline.runner import run_pipeline

    # The release path: register a candidate; the canary and smoke test below decide.
    run_config = dataclasses.replace(config.run_config, deploy=False, release_alias=registry.CANDIDATE).resolved()
    tracking_uri, model_name = run_config.tracking_uri, run_config.model_name
    before = aliases(tracking_uri, model_name)
    outcomes: list[StageOutcome] = []
    state: dict[str, Any] = {}

    def stage_pipeline(_: RehearsalConfig) -> str:
        result = run_pipeline(run_config, progress=lambda line: None)
        state["run"] = result
        if result.exit_code == ExitCode.GATE_REFUSED:
            raise StageFailed("pipeline", "gate refused the challenger: " + "; ".join(result.reasons), ExitCode.GATE_REFUSED)
        if result.exit_code != ExitCode.OK:
            raise StageFailed("pipeline", f"{result.status}: {result.message or '; '.join(result.reasons)}", result.exit_code)
        if result.status == "candidate":
            return f"candidate v{result.model_version} (gate passed against v{before.get('champion') or 'nothing'}); champion stays until the canary and smoke test pass"
        return f"{result.status}: {result.message}"

    def stage_canary(cfg: RehearsalConfig) -> str:
        from pipeline.delivery.local_canary import replay_requests, run_local_canary

        run = state.get("run")
        new = run.model_version if run is not None and run.status == "candidate" else None
        if new is None:
            state["canary"] = None
            raise _Skip(f"no new candidate ({run.status if run else 'no run'}): nothing to release; champion stays v{before.get('champion')}")
        base = before.get("champion")
        lease = ReleaseLease(tracking_uri, model_name, f"rehearsal-{uuid.uuid4().hex[:12]}")
        try:
            lease.acquire("canary")
        except LeaseBusy as exc:
            raise StageFailed("canary", str(exc), ExitCode.RELEASE_CONFLICT) from exc

        def finish(promoted: bool) -> str:
            if not promoted:
                return registry.close_candidate(tracking_uri, model_name, new, "rejected: local canary or smoke test failed")
            moved = registry.promote_if_unchanged(tracking_uri, model_name, expected=base, version=new)
            return f"{moved}; {registry.close_candidate(tracking_uri, model_name, new, f'released by {lease.release_id}')}"
        check = cfg.alarm_check
        if check is None and cfg.alarm_names and cfg.aws_endpoint:
            from pipeline.delivery.alarms import alarm_states, firing

            def check() -> list[str]:
                return [a.name for a in firing(alarm_states(cfg.alarm_names, endpoint_url=cfg.aws_endpoint))]

        try:
            result = run_local_canary(
                tracking_uri=tracking_uri,
                model_name=model_name,
                new_version=new,
                previous_version=base,
                requests=replay_requests(cfg.replay_data, cfg.replay_requests),
                config=cfg.canary,
                log_dir=cfg.log_dir,
                windows=cfg.windows,
                check_alarms=check,
                smoke_test=cfg.smoke_test or default_smoke_test(tracking_uri, model_name),
                finish=finish,
            )
        except registry.ChampionMoved as exc:
            raise StageFailed("canary", str(exc), ExitCode.RELEASE_CONFLICT) from exc
        finally:
            lease.release()
        state["canary"] = result
        smoke_failed = result.smoke is not None and not getattr(result.smoke, "passed", False)
        if result.rolled_back and not smoke_failed:
            raise StageFailed("canary", f"{'; '.join(result.verdict.reasons)}; {result.registry_action}", ExitCode.DEPLOY_FAILED)
        return result.verdict.render().replace("\n", " ")

    def stage_smoke(_: RehearsalConfig) -> str:
        result = state.get("canary")
        if result is None:
            raise _Skip("nothing was deployed")
        if result.smoke is not None and not getattr(result.smoke, "passed", False):
            raise StageFailed("smoke-test", f"{result.smoke}; {result.registry_action}", ExitCode.DEPLOY_FAILED)
        # The promotion (compare-and-set) happened at the verdict, while both servers ran.
        return (str(result.smoke) if result.smoke is not None else "no smoke test configured") + f"; {result.registry_action}"

    runners: dict[str, Callable[[RehearsalConfig], str]] = {
        "build-images": _stage_build_images,
        "train-sagemaker": _stage_train_sagemaker,
        "pipeline": stage_pipeline,
        "canary": stage_canary,
        "smoke-test": stage_smoke,
    }
    exit_code = ExitCode.OK
    for name in STAGES:
        if exit_code != ExitCode.OK:
            outcome = StageOutcome(name, "not-run", "an earlier stage failed")
        else:
            started = time.monotonic()
            try:
                outcome = StageOutcome(name, "ok", runners[name](config), time.monotonic() - started)
            except _Skip as skip:
                outcome = StageOutcome(name, "skipped", str(skip))
            except StageFailed as failed:
                outcome = StageOutcome(name, "failed", failed.reason, time.monotonic() - started)
                exit_code = failed.exit_code
            except Exception as exc:  # any other error still stops the release, named
                outcome = StageOutcome(name, "failed", f"{type(exc).__name__}: {exc}", time.monotonic() - started)
                exit_code = ExitCode.ERROR
        outcomes.append(outcome)
        print_line(outcome.render())
    if exit_code != ExitCode.OK:
        restore_aliases(tracking_uri, model_name, before)
    after = aliases(tracking_uri, model_name)
    stopped = next((o for o in outcomes if o.status == "failed"), None)
    if stopped:
        print_line(f"release stopped at stage {stopped.stage!r}: {stopped.detail}")
        print_line(f"registry aliases: {after} (before: {before}); the previous champion keeps serving")
    else:
        print_line(f"release rehearsed: aliases {after} (before: {before})")
    return RehearsalResult(tuple(outcomes), exit_code, before, after)


@dataclass(frozen=True)
class SmokeOutcome:
    """The serving helper's ``SmokeReport`` with a one-line rendering for stage logs."""

    report: Any

    @property
    def passed(self) -> bool:
        return bool(self.report.passed)

    def __str__(self) -> str:
        return "; ".join(f"{c.name} {'ok' if c.passed else 'FAILED'} ({c.detail})" for c in self.report.checks)


def default_smoke_test(tracking_uri: str, model_name: str) -> Callable[[str, str], Any]:
    """``pipeline.steps.smoke_test`` bound to this registry: health, the known prediction
    computed offline from the same version, and ``/version``."""

    def check(url: str, version: str) -> SmokeOutcome:
        from pipeline.steps.smoke_test import known_prediction, run_smoke_test

        expected = known_prediction(tracking_uri, model_name, version)
        return SmokeOutcome(run_smoke_test(url, expected, model_name, version))

    return check
