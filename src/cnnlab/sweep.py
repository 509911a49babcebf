"""Hydra callback for multirun sweeps: each failed job's error kept in its folder, and at the end a
`summary.csv` (one row per job: overrides, status, final metrics) and `summary.png` in the sweep folder."""

import csv
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

METRICS = ("val/acc", "val/err", "test/acc", "test/err", "train_eval/err")


def job_row(job_dir: Path) -> dict[str, Any]:
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    row: dict[str, Any] = {"job": job_dir.name, "overrides": " ".join(overrides or [])}
    results = json.loads((job_dir / "results.json").read_text()) if (job_dir / "results.json").is_file() else {}
    if results and "status" not in results:  # a run that stopped early says so in its results.json
        row["status"] = "completed"
        row.update({m: results.get(m, "") for m in METRICS})
    elif results:
        row["status"] = f"{results['status']}: {str(results.get('error', '?')).splitlines()[0]}"
    else:
        error = job_dir / "error.txt"
        row["status"] = "failed: " + (error.read_text().strip().splitlines() or ["?"])[0] if error.is_file() \
            else "missing"
    return row


def epoch_history(metrics_csv: Path) -> dict[str, dict[int, float]]:
    """metric -> {epoch: value} from a finished run's metrics.csv (the CSV logger's record, where each epoch spreads
    over several rows)."""
    history: dict[str, dict[int, float]] = {}
    if not metrics_csv.is_file():
        return history
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    history.setdefault(key, {})[epoch] = float(value)
    return history


def write_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    """summary.csv and summary.png from the job folders (numbered subfolders) of a sweep folder."""
    jobs = sorted((d for d in sweep_dir.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    rows = [job_row(d) for d in jobs]
    write_table(sweep_dir, jobs, rows)
    return rows


def write_table(out: Path, runs: list[Path], rows: list[dict[str, Any]]) -> None:
    """summary.csv (a row per run) and summary.png (validation error per epoch, test accuracy per run) in `out`."""
    fields = list(dict.fromkeys(["job", "overrides", "status", *METRICS, *(k for r in rows for k in r)]))
    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    _plot(out, runs, rows)


def _plot(sweep_dir: Path, jobs: list[Path], rows: list[dict[str, Any]]) -> None:
    from cnnlab.report.figures import pyplot

    plt = pyplot()

    fig, (curves, bars) = plt.subplots(1, 2, figsize=(13, 4.5))
    labels = [f"{r['job']}: {r['overrides'] or '(defaults)'}" for r in rows]
    for job_dir, label in zip(jobs, labels):
        series = epoch_history(job_dir / "metrics.csv").get("val/err", {})
        if series:
            curves.plot([e + 1 for e in sorted(series)], [series[e] for e in sorted(series)], marker="o", ms=3,
                        label=label)
    curves.set(title="validation error rate per epoch", xlabel="epoch")
    curves.grid(alpha=0.3)
    if curves.lines:
        curves.legend(fontsize=7)
    accuracy = [float(r["test/acc"]) if r.get("test/acc") not in (None, "") else 0.0 for r in rows]
    drawn = bars.barh(range(len(rows)), accuracy, color=["tab:blue" if r["status"] == "completed" else "tab:red"
                                                         for r in rows])
    bars.bar_label(drawn, [f"{a:.2%}" if r["status"] == "completed" else "failed" for a, r in zip(accuracy, rows)],
                   padding=3, fontsize=7)
    bars.set_yticks(range(len(rows)), labels, fontsize=7)
    bars.invert_yaxis()
    finished = [a for a, r in zip(accuracy, rows) if r["status"] == "completed"]
    low = max(0.0, min(finished) - 0.1 * (1 - min(finished)) - 0.01) if finished else 0.0  # close values stay apart
    bars.set(title="test accuracy (red: failed)", xlim=(low, 1.02))
    fig.tight_layout()
    fig.savefig(sweep_dir / "summary.png", dpi=110)
    plt.close(fig)


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_summary(sweep_dir)
        print(f"\nsweep summary: {sweep_dir / 'summary.csv'}")
        for row in rows:
            acc = row.get("test/acc")
            shown = f"test acc {float(acc):.4f}" if acc not in (None, "") else row["status"]
            print(f"  {row['job']:>3}  {shown:24s} {row['overrides']}")
        failed = [r for r in rows if r["status"] != "completed"]
        if failed:
            print(f"{len(failed)} of {len(rows)} jobs did not complete; see error.txt in their folders. "
                  "Re-run the same command with hydra.sweep.dir=<this sweep> to run only those.", file=sys.stderr)
            sys.exit(1)
