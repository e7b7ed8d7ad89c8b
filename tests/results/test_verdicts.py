"""Confirmatory and exploratory rows (isobn_tune.results.verdicts): Holm across tasks, rows whose verdict,
adjusted p and interval agree, summaries only within a metric. Pure numpy/scipy, fixed RNGs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from isobn_tune.results.paired_tests import level_for, too_few_text
from isobn_tune.results.statistics import A_BETTER, B_BETTER, NOT_DISTINGUISHABLE
from isobn_tune.results.verdicts import (
    CONFIRMATORY,
    EXPLORATORY,
    ROW_FIELDS,
    TaskComparison,
    confirmatory_rows,
    exploratory_row,
    holm,
    summarise_confirmatory,
)


def _comparison(task: str, a: np.ndarray, b: np.ndarray, *, metric: str = "accuracy",
                method: str = "isobn") -> TaskComparison:
    seeds = range(len(a))
    return TaskComparison(task=task, metric=metric, method=method, baseline="none", a=f"{method} lr=2e-05",
                          b="none lr=2e-05", a_scores=dict(zip(seeds, a.tolist(), strict=True)),
                          b_scores=dict(zip(seeds, b.tolist(), strict=True)), budget_epochs=3)


def _shifted(rng: np.random.Generator, n: int, shift: float, *,
             tied: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scores with a shared per-seed effect; ``tied``: rounded to whole points (ties and zeros)."""
    seed = rng.normal(70, 3, n)
    a, b = seed + shift + rng.normal(0, 1, n), seed + rng.normal(0, 1, n)
    return (np.round(a), np.round(b)) if tied else (a, b)


def test_holm_matches_the_step_down_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.3, 0.9]), [0.6, 0.9])
    assert holm([]).size == 0
    with pytest.raises(ValueError, match="p-values must be a 1-D sequence of numbers in \\[0, 1\\]"):
        holm([0.1, 1.5])


def test_every_confirmatory_row_verdict_iff_adjusted_p_at_most_alpha_iff_interval_excludes_zero():
    rng = np.random.default_rng(0)
    outcomes = {A_BETTER: 0, B_BETTER: 0, NOT_DISTINGUISHABLE: 0, None: 0}
    holm_stopped = 0
    for _ in range(300):
        m = int(rng.integers(1, 8))
        comparisons = []
        for t in range(m):
            a, b = _shifted(rng, int(rng.integers(3, 16)), float(rng.choice([-2.0, 0.0, 1.0, 2.0])),
                            tied=bool(rng.integers(2)))
            comparisons.append(_comparison(f"task{t}", a, b))
        for alpha in (0.05, 0.1):
            for r in confirmatory_rows(comparisons, alpha=alpha):
                outcomes[r.verdict] += 1
                assert r.role == CONFIRMATORY and r.min_pairs_needed == (6 if alpha == 0.05 else 5)
                if r.n_pairs < r.min_pairs_needed:
                    assert r.verdict is None and r.p_value is None and r.p_adjusted is None
                    assert r.note == too_few_text(alpha)
                    continue
                excludes = r.ci_low > 0 or r.ci_high < 0  # False for a NaN interval
                given = r.verdict in (A_BETTER, B_BETTER)
                assert given == (r.p_adjusted <= alpha) == excludes, r
                assert r.p_adjusted >= r.p_value
                assert (r.verdict == A_BETTER) == (r.ci_low > 0)
                holm_stopped += r.p_value <= alpha and not given
    assert min(outcomes.values()) > 30 and holm_stopped > 30


def test_a_row_holm_stops_is_not_distinguishable_and_its_interval_covers_zero():
    # two tasks, each better on all seeds: p = 2/64 = 0.03125 each; Holm: 2 x 0.03125 > 0.05
    a, b = np.arange(6.0) + 1, np.zeros(6)
    rows = confirmatory_rows([_comparison("rte", a, b), _comparison("mrpc", a, b)])
    for r in rows:
        assert r.p_value == pytest.approx(0.03125) and r.p_adjusted == pytest.approx(0.0625)
        assert r.verdict == NOT_DISTINGUISHABLE
        assert "needs ≥ 7 paired seeds" in r.note and np.isnan(r.ci_low)
    alone = confirmatory_rows([_comparison("rte", a, b)])[0]
    assert alone.verdict == A_BETTER and alone.ci_low > 0 and alone.ci_level == pytest.approx(0.96875)


def test_rows_serialise_to_json_and_csv_with_every_field():
    rng = np.random.default_rng(1)
    rows = confirmatory_rows([_comparison("rte", *_shifted(rng, 8, 2.0)),
                              _comparison("cola", *_shifted(rng, 4, 0.0), metric="mcc")])
    rows.append(exploratory_row(_comparison("rte", *_shifted(rng, 7, 0.0), method="layernorm")))
    for field in ("role", "estimate", "ci_low", "ci_high", "ci_level", "p_value", "p_adjusted", "n_pairs",
                  "min_pairs_needed", "budget_epochs", "seeds", "verdict"):
        assert field in ROW_FIELDS
    text = json.dumps([r.to_dict() for r in rows], allow_nan=False)
    back = json.loads(text)
    assert back[0]["seeds"] == list(range(8)) and back[0]["verdict"] == A_BETTER
    assert back[1]["verdict"] is None and back[1]["ci_low"] is None and back[1]["note"] == too_few_text()
    assert back[2]["role"] == EXPLORATORY and back[2]["verdict"] is None and back[2]["p_value"] is None
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS)
    writer.writeheader()
    writer.writerows(r.to_csv_row() for r in rows)
    read = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert read[1]["note"] == too_few_text() and read[1]["verdict"] == ""
    assert read[0]["seeds"] == "0 1 2 3 4 5 6 7"
    assert float(read[0]["estimate"]) == pytest.approx(rows[0].estimate)


def test_exploratory_row_has_an_interval_at_its_real_level_and_never_a_verdict():
    a, b = np.arange(7.0) + 1, np.zeros(7)
    row = exploratory_row(_comparison("rte", a, b))
    assert row.verdict is None and row.p_value is None and row.p_adjusted is None
    assert row.ci_low > 0 and row.ci_level == pytest.approx(level_for(7)) == pytest.approx(0.953125)


def test_summary_counts_significant_tasks_and_averages_only_within_a_metric():
    rng = np.random.default_rng(2)
    comparisons = [_comparison("rte", *_shifted(rng, 12, 3.0)), _comparison("sst2", *_shifted(rng, 12, 3.0)),
                   _comparison("cola", *_shifted(rng, 12, 0.0), metric="mcc"),
                   _comparison("stsb", *_shifted(rng, 4, 0.0), metric="corr")]
    rows = confirmatory_rows(comparisons)
    summary = summarise_confirmatory(rows)
    assert (summary.n_comparisons, summary.n_tested) == (4, 3)
    assert summary.n_significant == summary.n_a_better + summary.n_b_better == sum(
        r.p_adjusted is not None and r.p_adjusted <= 0.05 for r in rows)
    assert summary.min_pairs_for_every_row == 7  # alpha / 3 = 0.0167: 2 / 2**7 = 0.0156
    by_metric = {s.metric: s for s in summary.strata}
    assert set(by_metric) == {"accuracy", "mcc", "corr"}
    assert by_metric["accuracy"].tasks == ("rte", "sst2")
    assert by_metric["accuracy"].mean_estimate == pytest.approx(np.mean([rows[0].estimate, rows[1].estimate]))
    assert by_metric["corr"].n_untested == 1 and by_metric["mcc"].tasks == ("cola",)
    with pytest.raises(ValueError, match="confirmatory rows only"):
        summarise_confirmatory([exploratory_row(comparisons[0])])


def test_two_confirmatory_comparisons_for_one_task_and_method_are_refused():
    rng = np.random.default_rng(3)
    c = _comparison("rte", *_shifted(rng, 6, 0.0))
    message = "one confirmatory comparison per \\(task, method\\), got several for \\[\\('rte', 'isobn'\\)\\]"
    with pytest.raises(ValueError, match=message):
        confirmatory_rows([c, c])
