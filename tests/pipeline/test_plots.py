"""The gate's pictures: every one is written as a valid PNG, the slice chart's legend
covers no bar, and docs/pipeline.md names every file the run logs under ``plots/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import plots
from pipeline.schema import REPO_ROOT
from pipeline import schema
from pipeline.steps.gate import GateThresholds, judge

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scored(adult_sample: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    holdout = adult_sample.head(3000).reset_index(drop=True)
    rng = np.random.default_rng(0)
    y = holdout[schema.LABEL].to_numpy()
    challenger = np.clip(0.6 * y + rng.normal(0.2, 0.2, len(y)), 0, 1)
    champion = np.clip(0.55 * y + rng.normal(0.22, 0.2, len(y)), 0, 1)
    return holdout, challenger, champion


def _assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 300, (path.name, pixels.shape)
    assert pixels.std() > 0.01, f"{path.name} is blank"


def test_every_picture_of_a_decision_against_a_champion(scored, tmp_path: Path) -> None:
    holdout, challenger, champion = scored
    report = judge(holdout, challenger, champion, GateThresholds(bootstrap_samples=200))
    assert report.bootstrap_differences is not None and len(report.bootstrap_differences) == 200
    assert "bootstrap_differences" not in report.to_dict(), "the resamples stay out of the report's JSON"
    written = plots.gate_plots(holdout[schema.LABEL].to_numpy(), challenger, champion, report, tmp_path)
    assert sorted(p.name for p in written) == sorted(plots.GATE_PLOT_FILES)
    for path in written:
        _assert_png(path)


def test_a_first_model_has_no_bootstrap_picture_and_a_one_class_holdout_no_curves(scored, tmp_path: Path) -> None:
    holdout, challenger, _ = scored
    report = judge(holdout, challenger, None, GateThresholds())
    names = {p.name for p in plots.gate_plots(holdout[schema.LABEL].to_numpy(), challenger, None, report, tmp_path / "a")}
    assert names == set(plots.GATE_PLOT_FILES) - {"bootstrap_auc_difference.png"}
    negatives = holdout[holdout[schema.LABEL] == 0].reset_index(drop=True)
    one_class = judge(negatives, challenger[: len(negatives)], None, GateThresholds())
    names = {p.name for p in plots.gate_plots(negatives[schema.LABEL].to_numpy(), challenger[: len(negatives)], None,
                                              one_class, tmp_path / "b")}
    assert "roc_curve.png" not in names and "confusion_matrix.png" in names


def test_the_slice_legend_covers_no_bar(scored) -> None:
    holdout, challenger, champion = scored
    report = judge(holdout, challenger, champion, GateThresholds(bootstrap_samples=100))
    figure = plots.slice_figure(report.slices, 0.03)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    legends = [*figure.legends, *([ax.get_legend()] if ax.get_legend() else [])]
    assert legends, "the chart has a legend"
    bars = [patch.get_window_extent(renderer) for patch in ax.patches]
    assert len(bars) == 2 * len(report.slices)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        covered = [bar for bar in bars if bar.width > 0 and box.overlaps(bar)]
        assert not covered, f"the legend at {box} covers {len(covered)} bar(s)"


def test_the_docs_name_every_picture_and_where_it_is_logged() -> None:
    text = (REPO_ROOT / "docs" / "pipeline.md").read_text()
    missing = [name for name in plots.GATE_PLOT_FILES if f"`plots/{name}`" not in text]
    assert not missing, f"docs/pipeline.md does not name {missing}"


def test_every_regression_picture_of_a_decision_against_a_champion(use_project, tmp_path: Path) -> None:
    from tests.pipeline.regression_case import noisy, regression_frame, write_project

    frame = regression_frame()
    thresholds = use_project(write_project(tmp_path, frame)).THRESHOLDS
    champion = noisy(frame, 1.0, seed=1)
    challenger = noisy(frame, 1.2, seed=2)
    report = judge(frame, challenger, champion, thresholds)
    assert not report.passed, "the picture of a refusal"
    written = plots.gate_plots(schema.target(frame), challenger, champion, report, tmp_path / "plots", frame=frame)
    assert sorted(p.name for p in written) == sorted(plots.REGRESSION_GATE_PLOT_FILES)
    for path in written:
        _assert_png(path)
    first = judge(frame, challenger, None, thresholds)
    names = {p.name for p in plots.gate_plots(schema.target(frame), challenger, None, first, tmp_path / "first")}
    assert names == {"predicted_vs_actual.png"}, "no champion: no bootstrap; no holdout rows: no residual slices"


def test_the_docs_name_every_regression_picture() -> None:
    text = (REPO_ROOT / "docs" / "pipeline.md").read_text()
    missing = [name for name in plots.REGRESSION_GATE_PLOT_FILES if f"`plots/{name}`" not in text]
    assert not missing, f"docs/pipeline.md does not name {missing}"
