"""The monitor's pictures: PSI per feature with a legend that covers no bar, and PSI over
time across windows and a change of the served version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image

from pipeline.monitoring.drift import FeatureDrift
from pipeline.monitoring.report import plot_psi, plot_psi_history
from pipeline.monitoring.tracking import DriftWindow


def _drift(name: str, psi: float, limit: float = 0.2) -> FeatureDrift:
    return FeatureDrift(name, "numeric", "ks", psi, 0.1, 0.001, 1000, 500, psi > limit)


def test_psi_over_time_marks_the_limit_and_a_version_change(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    history = [DriftWindow(start + timedelta(days=d), "1" if d < 3 else "2",
                           {"age": 0.02 * d, "hours_per_week": 0.01}) for d in range(5)]
    current = SimpleNamespace(features=[_drift("age", 0.31), _drift("hours_per_week", 0.02)],
                              created_at=(start + timedelta(days=5)).isoformat(), model_version="2",
                              model_name="adult-income")
    path = plot_psi_history(history, current, 0.2, tmp_path / "psi_history.png")
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[1] >= 600 and pixels.std() > 0.01


def test_the_psi_legend_covers_no_bar(tmp_path: Path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    drawn: list[Figure] = []
    real = Figure.savefig

    def keep(self: Figure, *args, **kwargs):
        drawn.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    items = [_drift(f"feature_{i}", 0.05 + 0.04 * i) for i in range(14)]
    plot_psi(items, 0.2, tmp_path / "psi.png")
    (figure,) = drawn
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[0]
    legends = [*figure.legends, *([axes.get_legend()] if axes.get_legend() else [])]
    bars = [patch.get_window_extent(renderer) for patch in axes.patches]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not [bar for bar in bars if box.overlaps(bar)], "the legend covers a bar"
