"""Output places: a folder or file a command writes must be writable, of the right kind, and never hold something of
the user's that would be overwritten (an earlier run, other files)."""

import os
from pathlib import Path

from cnnlab.checks.fields import OptionError

RUN_RECORD = ("results.json", "metrics.csv", "summary.txt", "checkpoints")  # what an earlier run leaves behind
SHARDS_META = "cnnlab.json"  # written last by prepare.py: a shards folder without it is unfinished
SHARD_SPLITS = ("train", "val", "test", "train_eval")


def writable(path: Path, key: str, kind: str = "folder") -> Path:
    """`path` can be written as a `kind` ('folder' or 'file'). Nothing is made: a probe file is written and removed in
    the nearest folder that exists (trying is the only honest check: permissions alone do not tell a read-only mount,
    /proc or a full quota)."""
    path = Path(path).expanduser()
    if path.exists() and (path.is_dir() != (kind == "folder")):
        raise OptionError(f"{key}={path} is a {'file' if kind == 'folder' else 'folder'}; give a {kind} path.")
    folder = path if kind == "folder" else path.parent
    nearest = folder
    while not nearest.exists() and nearest.parent != nearest:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise OptionError(f"{key}={path} cannot be written: {nearest} is a file, not a folder; choose another {kind}.")
    try:
        probe = nearest / f".cnnlab-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise OptionError(f"{key}={path} cannot be written ({err.strerror or err}); choose another {kind} this user "
                          "can write.") from None
    return path


def earlier_run(folder: Path) -> list[str]:
    """What an earlier run left in `folder` (empty: nothing)."""
    return [name for name in RUN_RECORD if (folder / name).exists()]


def new_file(path: Path, key: str) -> Path:
    """A file a command creates: writable, and not an existing file (it would be replaced)."""
    path = writable(path, key, "file")
    if path.exists():
        raise OptionError(f"{key}={path} exists and would be replaced; choose a new file name or delete it first.")
    return path


def shards_folder(out: Path, key: str = "out") -> Path:
    """prepare.py's output: new, empty, or shards it wrote before (replaced); never a folder holding other files."""
    out = writable(out, key)
    if not out.exists():
        return out
    entries = {p.name for p in out.iterdir()}
    ours = {SHARDS_META, ".partial", *SHARD_SPLITS, *(f"{s}.reports" for s in SHARD_SPLITS)}
    if entries and (entries - ours or not ({SHARDS_META, ".partial"} & entries)):
        others = sorted(entries - ours) or sorted(entries)
        raise OptionError(f"{key}={out} holds files that prepare.py did not write ({', '.join(others[:3])}"
                          f"{', ...' if len(others) > 3 else ''}); they would be replaced: choose a new or empty "
                          "folder.")
    return out
