"""Evaluate every point a searcher suggests at a fixed set of seeds, judged by the median."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray.tune.search import Searcher
from ray.tune.search.repeater import TRIAL_INDEX, Repeater


class SeedMedianRepeater(Repeater):
    """Ray's :class:`Repeater` with two changes for seed sweeps.

    * The i-th repeat of a suggested point gets ``config["seed"] = seeds[i]``: seeds are a fixed
      set per point, never searched over.
    * The searcher is told the **median** over seeds (the paper's statistic), not the mean, and
      the grouping state is saved with the experiment so ``Tuner.restore`` keeps it.
    """

    def __init__(self, searcher: Searcher, seeds: Sequence[int]) -> None:
        if not seeds:
            raise ValueError(f"seeds must be a non-empty list, got {seeds!r}")
        super().__init__(searcher, repeat=len(seeds), set_index=True)
        self.seeds = list(seeds)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            config["seed"] = self.seeds[config[TRIAL_INDEX]]
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, **kwargs: Any) -> None:
        """Record one seed's score; once every seed of the point has ended, tell the searcher
        the median over the seeds that produced one (an error only if none did)."""
        group = self._trial_id_to_group[trial_id]
        metric = self.searcher.metric
        group.report(trial_id, result[metric] if result and metric in result else np.nan)
        if group.finished_reporting():
            scores = np.asarray(group.scores(), dtype=float)
            if np.isnan(scores).all():
                self.searcher.on_trial_complete(group.primary_trial_id, result=None, error=True)
            else:
                median = float(np.nanmedian(scores))
                self.searcher.on_trial_complete(group.primary_trial_id, result={metric: median})

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path + ".inner")
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path + ".inner")
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
