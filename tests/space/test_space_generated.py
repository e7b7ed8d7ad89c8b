"""Generated space files: mutations of the shipped ones (every YAML type in every key, deleted keys,
unknown keys, truncated text) are each accepted, or refused with one line per problem naming the
file; nothing else escapes (hypothesis, 1,000 files per run)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import yaml
from helpers import SPACES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isobn_tune.errors import UserError
from isobn_tune.space import load_space
from isobn_tune.space.loading import parse_yaml

FILES = sorted(p.name for p in SPACES.glob("*.yaml"))
EXAMPLES = 400

YAML_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.0e308, 9223372036854775808, -1, 0, 0.5, 1, 2, 65537, 10**9]),
    st.text(max_size=12),
    st.sampled_from(["", "x" * 5000, "../nowhere", "/", "~", ".inf", "1e-5", "minilm", "isobn", "asha"]),
    st.lists(st.one_of(st.integers(-5, 70000), st.floats(allow_nan=True), st.text(max_size=5)), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)


@functools.cache
def shipped(name: str) -> dict[str, Any]:
    """A shipped file's mapping, its relative data folder made absolute (the copies live elsewhere)."""
    raw = parse_yaml((SPACES / name).read_text(encoding="utf-8"))
    glue_dir = raw.get("data", {}).get("glue_dir")
    if glue_dir is not None:
        raw["data"]["glue_dir"] = str((SPACES / glue_dir).resolve())
    return raw


def key_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(node, dict):
        return []
    paths = []
    for key, value in node.items():
        paths.append((*prefix, key))
        paths += key_paths(value, (*prefix, key))
    return paths


@st.composite
def space_files(draw: st.DrawFn) -> str:
    raw = yaml.safe_load(yaml.safe_dump(shipped(draw(st.sampled_from(FILES)))))  # a deep copy
    kind = draw(st.sampled_from(["set", "set", "delete", "unknown", "truncate"]))
    if kind == "truncate":
        text = yaml.safe_dump(raw, sort_keys=False)
        return text[: draw(st.integers(0, len(text)))]
    path = draw(st.sampled_from(key_paths(raw)))
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    if kind == "set":
        parent[path[-1]] = draw(YAML_VALUES)
    elif kind == "delete":
        del parent[path[-1]]
    else:
        key = draw(st.one_of(st.text(min_size=1, max_size=8), st.integers(), st.floats(), st.booleans(),
                             st.none()))
        parent[key] = draw(YAML_VALUES)
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=space_files())
def test_a_generated_space_file_is_accepted_or_refused_one_line_per_problem(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_space(path)
        except UserError as exc:
            lines = str(exc).splitlines()
            assert lines and all(line.startswith(str(path)) for line in lines), str(exc)
