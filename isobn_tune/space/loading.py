"""Reading a space file: YAML, ``key=value`` overrides from the command line, and errors worded
for people (one line per problem, naming file, key, what is allowed and what was given)."""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from isobn_tune.errors import UserError
from isobn_tune.space.checks import cross_section_problems
from isobn_tune.space.schema import SCHEDULER_TYPES, SweepSpace


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


def parse_yaml(text: str) -> Any:
    """A YAML document or scalar as this project reads it (``1e-5`` is a float)."""
    return yaml.load(text, Loader=_Loader)


_OVERRIDE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)=(.*)$", re.S)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``raw`` with each ``dotted.key=value`` set (the value read as YAML: ``grid.seeds=[1,2]``,
    ``recipe.patience=null``); missing sections are created. Schema checks come after."""
    merged = _copy(raw)
    for item in overrides:
        match = _OVERRIDE.match(item)
        if not match:
            raise UserError(
                f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. recipe.max_epochs=3"
            )
        *sections, key = match.group(1).split(".")
        try:
            value = parse_yaml(match.group(2))
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or type(exc).__name__
            raise UserError(f"override {item!r}: invalid YAML value: {reason}") from None
        node = merged
        for depth, section in enumerate(sections):
            child = node.setdefault(section, {})
            if not isinstance(child, dict):
                where = ".".join(sections[: depth + 1])
                raise UserError(f"override {item!r}: {where} is a value, not a section")
            node = child
        node[key] = value
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def read_space_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a space file; unreadable files and bad YAML are one-line errors."""
    path = Path(path)
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
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
    except (yaml.YAMLError, RecursionError) as exc:
        raise UserError(f"{path}: invalid YAML: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise UserError(
            f"{path}: must be a mapping of sections (name, model, tasks, grid, ...), got {type(raw).__name__}"
        )
    return raw


def effective_space(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The space file's mapping with the command-line overrides applied (what the sweep runs)."""
    return apply_overrides(read_space_file(path), overrides)


def effective_space_text(path: str | Path, overrides: Sequence[str] = ()) -> str:
    """The space as the sweep runs it, as YAML: the file itself without overrides (comments kept),
    else the merged mapping under a comment naming the file and the overrides."""
    if not overrides:
        return Path(path).read_text(encoding="utf-8")
    header = f"# {path} with overrides: {' '.join(overrides)}\n"
    return header + yaml.safe_dump(effective_space(path, overrides), sort_keys=False)


def load_space(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpace:
    """Read, override and validate a space file; every problem is reported in one ``UserError``."""
    path = Path(path)
    raw = effective_space(path, overrides)
    overridden = [item.partition("=")[0] for item in overrides]
    try:
        space = SweepSpace.model_validate(raw, context={"base_dir": path.parent})
    except ValidationError as exc:
        lines = [_mark(f"{path}: {_describe(e)}", e["loc"], overridden) for e in exc.errors()]
        raise UserError("\n".join(lines)) from None
    problems = cross_section_problems(space)
    if problems:
        raise UserError("\n".join(
            _mark(f"{path}: {'.'.join(loc)}: {msg} (got {_short(value)})", loc, overridden)
            for loc, msg, value in problems
        ))
    return space


def _mark(line: str, loc: tuple[Any, ...], overridden: list[str]) -> str:
    """Say when a problem is in a value given on the command line."""
    key = ".".join(str(part) for part in loc if isinstance(part, str))
    hit = any(key == o or key.startswith(o + ".") or o.startswith(key + ".") for o in overridden)
    return line + " [set on the command line]" if hit and key else line


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
        printable = isinstance(part, str) and part and part.isprintable() and part.strip() == part
        key = part if printable else repr(part)  # one line per problem, whatever the key
        path += f".{key}" if path else key
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
