"""Where the bundled data files live: the checkout's top-level folders, or their copy inside a wheel."""

from __future__ import annotations

from pathlib import Path

from .errors import ClipbenchError

PACKAGE_DIR = Path(__file__).resolve().parent
# where task files' relative dataset paths point when neither --data-root nor $CLIPBENCH_DATA_ROOT says
DEFAULT_DATA_ROOT = Path("~/clipbench-data")


def data_dir(name: str) -> Path:
    """`tasks` or `prompts`: `<checkout>/<name>` in a source tree, `benchmark/_data/<name>` in a wheel."""
    for candidate in (PACKAGE_DIR / "_data" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise ClipbenchError(f"clipbench's '{name}' folder is missing from {PACKAGE_DIR}; reinstall clipbench")


def weights_dir(name: str) -> Path:
    return PACKAGE_DIR / "weights" / name


def git_commit() -> str | None:
    """The commit of the checkout clipbench runs from, or None when installed from a wheel."""
    import subprocess

    if not (PACKAGE_DIR.parent / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR.parent), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR.parent), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty else "")
