"""The model card: a model version's description, in Markdown prose a reviewer reads first.

MLflow shows a model version's description at the top of its page. The register step
writes this card into the same ``create_model_version`` call as the lineage tags, so a
version never exists without it. It says, in a page: what data the model learned from
(source, digest, rows), how it scores on the frozen holdout (overall, per slice, fairness),
what the gate decided and why, and where it came from (commit, run, the champion it was
judged against). A regression model's card speaks of its error metric (RMSE or MAE), its
error per slice and its sensitive groups' errors instead of ROC AUC and fairness gaps. The numbers come from the gate report the run logs as ``gate/``; the
card points there and to ``plots/`` for the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pipeline.steps.register import Candidate

MAX_DESCRIPTION_CHARS: Final = 5000
"""MLflow's registry stores a version's description in a ``VARCHAR(5000)`` column
(PostgreSQL enforces it; SQLite does not): a longer card would fail the create call."""
_TRUNCATED: Final = "\n\n_(card shortened to fit the registry; the run's `gate/gate_report.md` has every detail)_\n"


def _num(value: Any, *, signed: bool = False) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _regression_metric(candidate: Candidate) -> str | None:
    """The error metric of a regression gate report, None for a binary one."""
    from pipeline.steps.gate import task_of

    gate = candidate.gate
    return str(gate["challenger"]["gate_metric"]) if task_of(gate) == "regression" else None


def _decision(candidate: Candidate, max_reasons: int | None = None) -> list[str]:
    gate = candidate.gate
    passed = bool(gate.get("passed"))
    metric = _regression_metric(candidate)
    first = ("the no-skill floor and the group-error bound apply" if metric
             else "the floor and the fairness bounds apply")
    against = (
        f"against champion v{candidate.champion_version}"
        if candidate.champion_version
        else f"with no champion to compare against (first model: {first})"
    )
    if passed:
        if candidate.release_alias == "champion":
            lines = [f"**Gate: passed** {against}; this version was promoted to `champion`."]
        else:
            lines = [f"**Gate: passed** {against}; this version became the release `{candidate.release_alias}`: "
                     "`champion` moves to it only after approval, canary and smoke test."]
        if candidate.deploy_follows:
            lines.append("A local deploy and smoke test follow; the tag `deploy_smoke_test` records their verdict "
                         "(`failed`: the alias went back to the version this one replaced).")
    else:
        lines = [f"**Gate: refused** {against}; this version is the `challenger` and does not serve.", "",
                 "Why it was refused:", ""]
        reasons = list(gate.get("reasons", []))
        shown = reasons if max_reasons is None else reasons[:max_reasons]
        lines += [f"- {reason}" for reason in shown] or ["- (no reason recorded)"]
        if len(shown) < len(reasons):
            lines.append(f"- ... and {len(reasons) - len(shown)} more in the run's `gate/gate_report.md`")
    bootstrap = gate.get("bootstrap")
    if bootstrap and metric:
        name = metric.upper()
        lines += [
            "",
            f"Paired bootstrap of the {name} difference (challenger - champion), {bootstrap['samples']} resamples: "
            f"mean {_num(bootstrap['mean_difference'], signed=True)}, {bootstrap['confidence']:.0%} interval "
            f"[{_num(bootstrap['ci_low'], signed=True)}, {_num(bootstrap['ci_high'], signed=True)}] against a "
            f"bound of {_num(bootstrap['bound'], signed=True)} ({bootstrap['tolerance']} x the champion's {name} "
            f"{_num(bootstrap['champion_error'])}).",
        ]
    elif bootstrap:
        lines += [
            "",
            f"Paired bootstrap of the ROC AUC difference (challenger - champion), {bootstrap['samples']} resamples: "
            f"mean {_num(bootstrap['mean_difference'], signed=True)}, {bootstrap['confidence']:.0%} interval "
            f"[{_num(bootstrap['ci_low'], signed=True)}, {_num(bootstrap['ci_high'], signed=True)}] against a "
            f"tolerance of -{bootstrap['tolerance']}.",
        ]
    return lines


def _data(candidate: Candidate) -> list[str]:
    rows = {name: len(getattr(candidate, name)) for name in ("train", "validation", "holdout")}
    return [
        "## Data",
        "",
        f"Learned from `{candidate.data_source}` (content digest `{candidate.data_digest}`), "
        f"{sum(rows.values()):,} rows: {rows['train']:,} for training, {rows['validation']:,} for early "
        f"stopping and {rows['holdout']:,} in the frozen holdout (digest `{candidate.holdout_digest}`) "
        "on which every number below was measured.",
    ]


def _metrics(candidate: Candidate) -> list[str]:
    champion = (candidate.gate.get("champion") or {}).get("metrics", {})
    overall = {k.removeprefix("holdout_"): v for k, v in candidate.metrics.items() if k.startswith("holdout_")}
    if not overall:
        return []
    lines = ["## Holdout metrics", "", "| metric | this version | champion |", "|---|---|---|"]
    lines += [f"| {name} | {_num(value)} | {_num(champion.get(name))} |" for name, value in overall.items()]
    return lines


def _slices(candidate: Candidate) -> list[str]:
    slices = candidate.gate.get("slices") or []
    if not slices:
        return []
    metric = _regression_metric(candidate)
    if metric:
        lines = [f"## Slices ({metric.upper()} on the holdout; lower is better)", "",
                 "| slice | rows | this version | champion | change |", "|---|---|---|---|---|"]
        return lines + [
            f"| {s['column']}={s['value']} | {s['rows']} | {_num(s.get(f'challenger_{metric}'))} | "
            f"{_num(s.get(f'champion_{metric}'))} | {_num(s.get('change'), signed=True)} |"
            for s in slices
        ]
    lines = ["## Slices (ROC AUC on the holdout)", "", "| slice | rows | this version | champion | change |",
             "|---|---|---|---|---|"]
    lines += [
        f"| {s['column']}={s['value']} | {s['rows']} | {_num(s['challenger_roc_auc'])} | "
        f"{_num(s.get('champion_roc_auc'))} | {_num(s.get('change'), signed=True)} |"
        for s in slices
    ]
    return lines


def _fairness(candidate: Candidate) -> list[str]:
    fairness = candidate.gate.get("fairness") or {}
    if not fairness or fairness.get("attribute") is None:
        return []
    metric = _regression_metric(candidate)
    if metric:
        bound = (candidate.gate.get("thresholds") or {}).get("max_group_error_ratio")
        groups = fairness.get("groups") or {}
        sizes = ", ".join(f"{name}: {_num(g.get(metric))} over {g.get('rows', '?')} rows" for name, g in groups.items())
        return [
            f"## Group errors across `{fairness['attribute']}`",
            "",
            f"{metric.upper()} per group: {sizes or '-'}. Worst group over best group "
            f"({fairness.get('worst_group')} / {fairness.get('best_group')}): {_num(fairness.get('error_ratio'))}"
            + (f", bound {bound}." if bound is not None else "; no bound is set (max_group_error_ratio).")
            + "".join(f" {note}." for note in fairness.get("notes", [])),
        ]
    bounds = candidate.gate.get("thresholds") or {}
    eo, dp = fairness.get("equal_opportunity_difference"), fairness.get("demographic_parity_difference")
    groups = fairness.get("groups") or {}
    sizes = ", ".join(f"{name}: {g.get('rows', '?')} rows" for name, g in groups.items())
    return [
        f"## Fairness across `{fairness.get('attribute', '?')}`",
        "",
        f"Equal-opportunity difference (largest minus smallest true-positive rate) {_num(eo)}"
        + (f", bound {bounds['max_equal_opportunity_difference']}" if "max_equal_opportunity_difference" in bounds else "")
        + f"; demographic-parity difference (spread of positive prediction rates) {_num(dp)}"
        + (f", bound {bounds['max_demographic_parity_difference']}" if "max_demographic_parity_difference" in bounds else "")
        + "."
        + (f" Groups: {sizes}." if sizes else ""),
    ]


def _lineage(candidate: Candidate, *, run_id: str, git_commit: str) -> list[str]:
    device = candidate.training.get("device")
    return [
        "## Lineage",
        "",
        f"- commit `{git_commit}`",
        f"- MLflow run `{run_id}`: parameters, metrics, datasets, the gate report (`gate/`), the plots (`plots/`) "
        "and the monitoring baseline",
        f"- judged against champion {'v' + candidate.champion_version if candidate.champion_version else 'none'}",
        f"- candidate key `{candidate.candidate_key}` (the data, code and parameters it was built from)",
        *([f"- trained on `{device}`"] if device else []),
    ]


def model_card(candidate: Candidate, *, run_id: str, git_commit: str) -> str:
    """The Markdown card for ``candidate``, at most ``MAX_DESCRIPTION_CHARS`` characters.

    ``candidate.gate`` is the gate report (``GateReport.to_dict()``); of it only
    ``passed`` and ``reasons`` are required, the rest (slices, fairness, bootstrap,
    champion metrics) appears when present. A refusal with more reasons than fit lists
    the first ones and says how many more the gate report holds; the lineage always fits.
    """
    reasons = len(candidate.gate.get("reasons", []))
    for limit in (None, *range(reasons - 1, -1, -1)):
        sections = [
            [f"# {candidate.model_name}: candidate `{candidate.candidate_key[:12]}`", ""] + _decision(candidate, limit),
            _data(candidate),
            _metrics(candidate),
            _slices(candidate),
            _fairness(candidate),
            _lineage(candidate, run_id=run_id, git_commit=git_commit),
        ]
        card = "\n\n".join("\n".join(section) for section in sections if section) + "\n"
        if len(card) <= MAX_DESCRIPTION_CHARS:
            return card
    # Only reachable with absurdly long single fields (a data source path of kilobytes).
    room = MAX_DESCRIPTION_CHARS - len(_TRUNCATED)
    return card[: card.rfind("\n", 0, room)] + _TRUNCATED
