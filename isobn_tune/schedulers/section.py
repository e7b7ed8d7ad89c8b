"""What every ``scheduler`` section of a space file knows: how to build its Tune scheduler and
which problems it has with the other sections.

Sections are validated without Ray; :meth:`SchedulerSection.build` imports Ray inside itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from pydantic import Field

from isobn_tune.strict import StrictModel
from isobn_tune.train.metrics import BEST_OBJECTIVE, MODE

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

    from isobn_tune.schedulers.decisions import GroupRule

STOPPING = {"time_attr": "epoch", "metric": BEST_OBJECTIVE, "mode": MODE}
"""What every stopping rule (per trial or per configuration) decides on: the best dev metric so
far (the paper keeps the best epoch), per epoch."""
Problem = tuple[tuple[str, ...], str, Any]
"""A problem across sections: (key path, message, value), as the space loader words it."""


@dataclass(frozen=True)
class SweepFacts:
    """What a scheduler section may read outside its own section, to check itself and to build."""

    max_epochs: int  # recipe.max_epochs
    seeds: int  # len(grid.seeds): the seeds per configuration
    max_concurrent_trials: int | None  # resources.max_concurrent_trials
    checkpoints_to_keep: int  # run.checkpoints_to_keep
    optuna: bool  # whether the space has an optuna section


class SchedulerSection(StrictModel):
    """A ``scheduler`` section; subclasses add ``type: Literal[...]`` and their options."""

    groups_seeds: ClassVar[bool] = False
    """Whether it decides on configurations with all their seeds (``*_by_config``)."""
    restores_other_trials: ClassVar[bool] = False
    """Whether it may restore one trial's checkpoint into another (PBT's exploit): then finished
    trials are thinned only once the run ends."""
    epoch_keys: ClassVar[tuple[str, ...]] = ()
    """Options counted in epochs, so at most ``recipe.max_epochs``."""

    @classmethod
    def kind(cls) -> str:
        """The ``type`` value that selects this section."""
        return get_args(cls.model_fields["type"].annotation)[0]

    def build(self, facts: SweepFacts) -> TrialScheduler:
        """The Tune scheduler of this section for a sweep with these facts (imports Ray)."""
        raise NotImplementedError

    def problems(self, facts: SweepFacts) -> list[Problem]:
        """Problems of this section against the rest of the space (empty: none)."""
        found: list[Problem] = []
        for key in self.epoch_keys:
            value = getattr(self, key)
            if value is not None and value > facts.max_epochs:
                message = f"must be <= recipe.max_epochs ({facts.max_epochs})"
                found.append((("scheduler", key), message, value))
        return found


STRATUM_KEY = "cls_norm"
"""What ``keep_best_per`` may name: a configuration's method."""


class GroupSection(SchedulerSection):
    """A scheduler that keeps or stops a configuration with all its seeds."""

    groups_seeds: ClassVar[bool] = True
    keep_best_per: Literal["cls_norm"] | None = Field(
        default=None,
        description="Never stop the current best configuration of each method (cls_norm); unset: "
        "cls_norm when grid.cls_norm has more than one value, else null.",
    )

    def rule(self, facts: SweepFacts) -> GroupRule:
        """The decision rule in the metric's mode, without Ray (a replay drives it directly); give
        each seed's stratum (its ``keep_best_per`` value) to ``add``."""
        raise NotImplementedError

    def build(self, facts: SweepFacts) -> TrialScheduler:
        from isobn_tune.schedulers.group import GroupScheduler

        return GroupScheduler(self.rule(facts), stratum_key=self.keep_best_per, **STOPPING)

    def problems(self, facts: SweepFacts) -> list[Problem]:
        found = super().problems(facts)
        limit = facts.max_concurrent_trials
        if limit is not None and limit % facts.seeds:
            found.append((
                ("resources", "max_concurrent_trials"),
                (f"must be a multiple of the {facts.seeds} seeds per configuration with scheduler "
                 f"{self.type} (so a configuration's seeds run together)"),  # type: ignore[attr-defined]
                limit,
            ))
        return found
