"""`python src/compare.py RUN_DIR...`: finished runs from any day, sweep or not, one table per data set (figures of
different data sets do not compare), each sorted by a metric; summary.csv and summary.png as a sweep writes them."""

import json
from pathlib import Path

import yaml

from cnnlab.checks.fields import OptionError
from cnnlab.checks.places import writable
from cnnlab.sweep import METRICS, job_row, write_table

LOWER_IS_BETTER = ("err", "loss", "_s")
EXAMPLE = "e.g. outputs/train/2026-12-01_10-00-00"


def read_run(folder: Path) -> tuple[dict, str] | str:
    """(results, the data set as its config names it) of a finished run; else why it is skipped."""
    if not folder.is_dir():
        raise OptionError(f"{folder} is not a folder; give run folders, {EXAMPLE}.")
    if not (folder / "results.json").is_file():
        return "no results.json (a run still going, stopped, or not a run folder)"
    try:
        results = json.loads((folder / "results.json").read_text())
        config = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise OptionError(f"{folder}: its results.json or config.yaml cannot be read ({type(err).__name__}: "
                          f"{str(err).splitlines()[0]}); the run folder is damaged: leave it out.") from None
    if not isinstance(results, dict) or not isinstance(config or {}, dict):
        raise OptionError(f"{folder}: its results.json is not cnnlab's (a mapping of metrics); leave it out.")
    if "status" in results:  # a run that stopped early says so, and how
        return f"the run {results['status']}: {str(results.get('error', '?')).splitlines()[0]}"
    data = (config or {}).get("data") or {}
    name = data.get("family", "?") + (f" classes {data['classes']}" if data.get("classes") else "")
    return results, name + (f" {data.get('root')}" if data.get("family") in ("folder", "stream") else "")


def compare(folders: list[Path], metric: str, out: Path) -> list[dict]:
    """The tables, best first by `metric` within each data set; summary.csv and summary.png of every run in `out`."""
    if not folders:
        raise OptionError("compare.py needs run folders: python src/compare.py outputs/train/<run> outputs/train/<run>")
    writable(out, "--out")
    runs = {}
    for folder in map(Path, folders):
        read = read_run(folder)
        if isinstance(read, str):
            print(f"skipped {folder}: {read}")
        else:
            runs[folder] = read
    if not runs:
        raise OptionError(f"none of the {len(folders)} folders holds a finished run (each skipped above); give run "
                          f"folders with a results.json, {EXAMPLE}.")
    known = sorted({k for results, _ in runs.values() for k in results})
    if metric not in known:
        raise OptionError(f"metric={metric!r} is in none of these runs' results.json; choose one of "
                          f"{', '.join(k for k in known if not k.startswith('time/'))}.")
    lower = any(metric.endswith(s) for s in LOWER_IS_BETTER)
    worst = float("inf") if lower else float("-inf")
    order = sorted(runs, key=lambda f: (runs[f][1], runs[f][0].get(metric, worst) * (1 if lower else -1)))
    rows = [{**job_row(f), "job": str(f), "data": runs[f][1], metric: runs[f][0].get(metric, ""),
             "time/total_s": runs[f][0].get("time/total_s", "")} for f in order]
    out.mkdir(parents=True, exist_ok=True)
    write_table(out, order, rows)
    shown = list(dict.fromkeys([metric, *(m for m in METRICS if m != metric), "time/total_s"]))
    width = max(len(str(f)) for f in order)
    for data in dict.fromkeys(runs[f][1] for f in order):
        group = [(f, row) for f, row in zip(order, rows) if row["data"] == data]
        print(f"\n{data}: {len(group)} runs, by {metric} ({'lower' if lower else 'higher'} is better)")
        print(f"{'run':{width}s}  " + "  ".join(f"{m:>14s}" for m in shown) + "  overrides")
        for folder, row in group:
            cells = [runs[folder][0].get(m) for m in shown]
            print(f"{str(folder):{width}s}  " + "  ".join(f"{c:14.4f}" if isinstance(c, float) else f"{'':14s}"
                                                         for c in cells) + f"  {row['overrides'] or '(defaults)'}")
    print(f"table: {out / 'summary.csv'}, plot: {out / 'summary.png'}")
    return rows
