"""What the entry points share: the repository root for configs, and errors shown as one short message."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cnnlab.errors import CnnlabError

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = str(ROOT / "conf")


def set_root() -> None:
    """Run directories and data default to the repository, wherever the command is started from."""
    os.environ.setdefault("CNNLAB_ROOT", str(ROOT))


def friendly_errors(task: Callable) -> Callable:
    """Own errors end the run with `error: ...` and exit code 2; HYDRA_FULL_ERROR=1 shows the traceback."""

    @functools.wraps(task)
    def run(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except CnnlabError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return run
