"""Tune's own per-trial schedulers as space-file sections: fifo, asha, median and pbt.

Stopping rules compare the best dev metric so far (the paper keeps the best epoch); PBT exploits on
the current epoch's metric. Ray is imported only when a scheduler is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator

from isobn_tune.schedulers.section import STOPPING, Problem, SchedulerSection, SweepFacts
from isobn_tune.strict import StrictModel, no_repeats
from isobn_tune.train.metrics import MODE, OBJECTIVE
from isobn_tune.train.recipe import GRID_POINT_KEY

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

PBT_MIN_CHECKPOINTS = 4  # Ray warns that <= 2 lets checkpoints go before an exploit restores them


class FifoScheduler(SchedulerSection):
    """Every trial runs to the end (the paper)."""

    type: Literal["fifo"] = Field(description="Scheduler kind.")

    def build(self, facts: SweepFacts) -> TrialScheduler:
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()


class AshaScheduler(SchedulerSection):
    """Ray's ASHA on single trials (time unit: epochs, max_t = recipe.max_epochs)."""

    epoch_keys = ("grace_period",)
    type: Literal["asha"] = Field(description="Scheduler kind.")
    grace_period: int = Field(default=1, ge=1, le=1000, description="Epochs before a trial can stop.")
    reduction_factor: float = Field(default=2.0, gt=1, le=100, description="Keep 1/factor per rung.")

    def build(self, facts: SweepFacts) -> TrialScheduler:
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(**STOPPING, max_t=facts.max_epochs, grace_period=self.grace_period,
                             reduction_factor=self.reduction_factor)


class MedianScheduler(SchedulerSection):
    """Ray's median stopping rule on single trials."""

    epoch_keys = ("grace_period",)
    type: Literal["median"] = Field(description="Scheduler kind.")
    grace_period: int = Field(default=1, ge=1, le=1000, description="Epochs before a trial can stop.")
    min_samples_required: int = Field(
        default=3, ge=1, le=100_000, description="Trials needed to compute a median."
    )

    def build(self, facts: SweepFacts) -> TrialScheduler:
        from ray.tune.schedulers import MedianStoppingRule

        # Without enough trials to compare with, Ray's rule pauses a trial to let pending ones run
        # (time slicing); a minimum slice of the whole budget turns that off: a trial runs on, and
        # a pause never drops the epoch it was reporting.
        return MedianStoppingRule(
            **STOPPING, grace_period=self.grace_period, min_samples_required=self.min_samples_required,
            min_time_slice=facts.max_epochs,
        )


class PbtMutations(StrictModel):
    """What PBT may change in a running trial."""

    lr: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        min_length=2, max_length=10_000,
        description="Learning rates PBT may switch a trial to (>= 2, in (0, 1]).",
    )

    @field_validator("lr")
    @classmethod
    def _distinct(cls, values: list[float]) -> list[float]:
        return no_repeats(values)


class PbtScheduler(SchedulerSection):
    """Ray's population-based training; trials start from the grid and only lr is mutated."""

    restores_other_trials = True
    epoch_keys = ("perturbation_interval",)
    type: Literal["pbt"] = Field(description="Scheduler kind.")
    perturbation_interval: int = Field(
        default=1, ge=1, le=1000, description="Epochs between exploit/explore steps."
    )
    hyperparam_mutations: PbtMutations = Field(description="What PBT mutates: only lr.")
    synch: bool = Field(
        default=False,
        description=("Exploit only once every trial reached the interval: reproducible decisions "
                     "at the cost of idle waiting (Ray's asynchronous PBT decides as results arrive)."),
    )

    def build(self, facts: SweepFacts) -> TrialScheduler:
        from ray.tune.schedulers import PopulationBasedTraining

        return PopulationBasedTraining(
            time_attr="epoch", metric=OBJECTIVE, mode=MODE,
            perturbation_interval=self.perturbation_interval, synch=self.synch,
            # The grid's lr sits in the trial's grid point (see sweep.search.build_param_space).
            hyperparam_mutations={GRID_POINT_KEY: {"lr": list(self.hyperparam_mutations.lr)}},
        )

    def problems(self, facts: SweepFacts) -> list[Problem]:
        found = super().problems(facts)
        if facts.checkpoints_to_keep < PBT_MIN_CHECKPOINTS:
            found.append((
                ("run", "checkpoints_to_keep"),
                (f"must be >= {PBT_MIN_CHECKPOINTS} with scheduler pbt (an exploit restores another trial's "
                 "checkpoint, which must still exist when the trial restarts)"),
                facts.checkpoints_to_keep,
            ))
        if facts.optuna:
            found.append((("scheduler", "type"), "pbt cannot be combined with an optuna section", "pbt"))
        return found
