"""`python src/compare.py RUN_DIR...`: one table of finished runs from any day, sweep or not, sorted by a metric,
with summary.csv and summary.png as a sweep writes them. Runs of different data sets are not compared."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from cnnlab.checks.fields import OptionError
from cnnlab.checks.places import writable
from cnnlab.sweep import METRICS, job_row, write_table

LOWER_IS_BETTER = ("err", "loss", "_s")


@dataclass(frozen=True)
class Finished:
    folder: Path
    results: dict[str, float]
    data: str  # the data set, as its config names it: family, and the class subset if any


def read_run(folder: Path) -> Finished:
    if not folder.is_dir():
        raise OptionError(f"{folder} is not a folder; give run folders, e.g. outputs/train/2026-12-01_10-00-00.")
    try:
        results = json.loads((folder / "results.json").read_text())
        config_file = folder / "config.yaml"
        config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise OptionError(f"{folder}: its results.json or config.yaml cannot be read ({type(err).__name__}: "
                          f"{str(err).splitlines()[0]}); the run folder is damaged: leave it out.") from None
    if not isinstance(results, dict) or not isinstance(config or {}, dict):
        raise OptionError(f"{folder}: its results.json is not cnnlab's (a mapping of metrics); leave it out.")
    data = (config or {}).get("data") or {}
    name = data.get("family", "?") + (f" classes {data['classes']}" if data.get("classes") else "")
    if data.get("family") in ("folder", "stream"):
        name += f" {data.get('root')}"
    return Finished(folder, results, name)


def unfinished(folder: Path) -> str | None:
    """Why a folder holds no finished run (None when it does): not a folder is the user's mistake, not skipped."""
    if not folder.is_dir():
        raise OptionError(f"{folder} is not a folder; give run folders, e.g. outputs/train/2026-12-01_10-00-00.")
    results = folder / "results.json"
    if not results.is_file():
        return "no results.json (a run still going, stopped, or not a run folder)"
    try:
        status = json.loads(results.read_text())
    except ValueError:
        return None  # damaged: read_run says so
    if isinstance(status, dict) and status.get("status") == "failed":
        return f"the run failed: {status.get('error', '?')}"
    return None


def compare(folders: list[Path], metric: str, out: Path) -> list[dict]:
    """The table, sorted best first by `metric`; summary.csv and summary.png in `out`."""
    if not folders:
        raise OptionError("compare.py needs run folders: python src/compare.py outputs/train/<run> outputs/train/<run>")
    writable(out, "--out")
    runs = []
    for folder in map(Path, folders):
        why = unfinished(folder)
        if why:
            print(f"skipped {folder}: {why}")
        else:
            runs.append(read_run(folder))
    if not runs:
        raise OptionError(f"none of the {len(folders)} folders holds a finished run (each skipped above); give run "
                          "folders with a results.json, e.g. outputs/train/2026-12-01_10-00-00.")
    kinds = sorted({r.data for r in runs})
    if len(kinds) > 1:
        raise OptionError(f"these runs were trained on different data sets ({'; '.join(kinds)}); their figures do not "
                          "compare: give runs of one data set.")
    known = sorted({k for r in runs for k in r.results})
    if metric not in known:
        raise OptionError(f"metric={metric!r} is in none of these runs' results.json; choose one of "
                          f"{', '.join(k for k in known if not k.startswith('time/'))}.")
    lower = any(metric.endswith(s) for s in LOWER_IS_BETTER)
    runs.sort(key=lambda r: r.results.get(metric, float("inf") if lower else float("-inf")), reverse=not lower)
    rows = []
    for run in runs:
        row = job_row(run.folder)
        row["job"] = str(run.folder)
        row[metric] = run.results.get(metric, "")
        row["time/total_s"] = run.results.get("time/total_s", "")
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    write_table(out, [r.folder for r in runs], rows)
    shown = list(dict.fromkeys([metric, *(m for m in METRICS if m != metric), "time/total_s"]))
    width = max(len(str(r.folder)) for r in runs)
    print(f"{runs[0].data}: {len(runs)} runs, by {metric} ({'lower' if lower else 'higher'} is better)")
    print(f"{'run':{width}s}  " + "  ".join(f"{m:>14s}" for m in shown) + "  overrides")
    for run, row in zip(runs, rows):
        cells = [run.results.get(m) for m in shown]
        print(f"{str(run.folder):{width}s}  " + "  ".join(f"{c:14.4f}" if isinstance(c, float) else f"{'':14s}"
                                                           for c in cells) + f"  {row['overrides'] or '(defaults)'}")
    print(f"table: {out / 'summary.csv'}, plot: {out / 'summary.png'}")
    return rows
