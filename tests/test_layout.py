"""The package's layout tells its pipeline: stages as subpackages, each importing only from the
stages before it, no import cycles, and a short top level."""

from __future__ import annotations

import ast
from pathlib import Path

import isobn_tune

PACKAGE = Path(isobn_tune.__file__).parent

# The pipeline, first to last; a module may import from its own stage and the ones before it.
STAGES = (
    "basics", "data", "train", "results", "schedulers", "space", "sweep", "tracking", "serving", "entry",
)
BASICS = {"errors", "strict", "console", "redaction"}
ENTRY = {"__init__", "cli", "runner"}
MAX_TOP_LEVEL_MODULES = 10


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "entry"
    if len(parts) == 2 and not (PACKAGE / parts[1]).is_dir():
        return "basics" if parts[1] in BASICS else "entry"
    return parts[1]


def internal_imports(path: Path) -> set[str]:
    """Every isobn_tune module ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("isobn_tune"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _exists(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("isobn_tune"))
    return found


def _exists(module: str) -> bool:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): internal_imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_stages_import_only_earlier_stages():
    upward = [
        f"{importer} ({stage(importer)}) imports {imported} ({stage(imported)})"
        for importer, imports in import_graph().items()
        for imported in imports
        if STAGES.index(stage(imported)) > STAGES.index(stage(importer))
    ]
    assert upward == []


def test_no_import_cycles():
    graph = import_graph()
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == "isobn_tune" or nxt.count(".") < 2 and (PACKAGE / nxt.split(".")[-1]).is_dir():
                continue  # a package's __init__ only re-exports
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    done: set[str] = set()
    for module in graph:
        if module not in done:
            visit(module, [module])
    assert cycles == []


def test_top_level_is_short_and_every_stage_says_what_it_owns():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    stages = [p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() and p.name != "sample_glue"]
    assert {p.name for p in stages} == set(STAGES) - {"basics", "entry"}
    for package in stages:
        assert ast.get_docstring(ast.parse((package / "__init__.py").read_text())), package
    assert {stage(f"isobn_tune.{name}") for name in top} <= {"basics", "entry"}
