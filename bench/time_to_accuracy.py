"""Accuracy against wall time, drawn from run directories (their metrics.csv and results.json), never by hand.

    python bench/time_to_accuracy.py RUN_DIR [RUN_DIR ...] --out bench/cifar10_time_to_accuracy.png

Each run is one curve: the test accuracy after every epoch (`test_epoch/acc`, logged when the run had
`data.monitor_test=true`; otherwise the validation accuracy, labelled so) at the wall time the epoch ended
(`time/elapsed_s`: process start to the end of the epoch's evaluation), and a star for the final test accuracy
(with the run's TTA) at the whole process time (`time/total_s`). The console lists, per run, the first epoch
that reached each `--targets` accuracy and its time.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import yaml


def epochs(run_dir: Path) -> tuple[list[float], list[float], str]:
    """(elapsed seconds, accuracy, which split) per epoch, from the run's metrics.csv."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    split = "test_epoch" if any(r.get("test_epoch/acc") for r in rows) else "val"
    acc = {int(r["epoch"]): float(r[f"{split}/acc"]) for r in rows if r.get(f"{split}/acc")}
    elapsed = {int(r["epoch"]): float(r["time/elapsed_s"]) for r in rows if r.get("time/elapsed_s")}
    common = sorted(set(acc) & set(elapsed))
    return [elapsed[e] for e in common], [acc[e] for e in common], "test" if split == "test_epoch" else "validation"


def label(run_dir: Path) -> str:
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    arch = config.get("arch", {}).get("name", "?")
    epochs_total = config.get("trainer", {}).get("max_epochs", "?")
    return f"{arch}, {epochs_total} epochs ({run_dir.name})"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("time_to_accuracy.png"))
    parser.add_argument("--targets", type=float, nargs="*", default=[0.85, 0.90])
    parser.add_argument("--title", default="CIFAR-10 on a 2-core CPU: test accuracy against wall time")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    rows = []
    for run in args.runs:
        times, accs, split = epochs(run)
        name = label(run)
        line = ax.plot([t / 60 for t in times], [100 * a for a in accs], marker="o", ms=3,
                       label=f"{name}: {split} accuracy after each epoch")[0]
        results = json.loads((run / "results.json").read_text()) if (run / "results.json").is_file() else {}
        if "test/acc" in results and "time/total_s" in results:
            ax.plot(results["time/total_s"] / 60, 100 * results["test/acc"], marker="*", ms=12, ls="none",
                    color=line.get_color(), label=f"{name}: final test accuracy {100 * results['test/acc']:.2f}%")
        row = {"run": str(run), "label": name, "final_test_acc": results.get("test/acc"),
               "total_s": results.get("time/total_s")}
        for target in args.targets:
            hit = next(((t, a) for t, a in zip(times, accs) if a >= target), None)
            row[f"time_to_{target:g}_s"] = hit[0] if hit else None
        rows.append(row)
        reached = ", ".join(f"{100 * t:g}% at {row[f'time_to_{t:g}_s'] / 60:.1f} min" if row[f"time_to_{t:g}_s"]
                            else f"{100 * t:g}% not reached" for t in args.targets)
        final = f"{100 * row['final_test_acc']:.2f}% in {row['total_s'] / 60:.1f} min" if results else "no results"
        print(f"{name}: {split} per epoch: {reached}; final test {final}")
    for target in args.targets:
        ax.axhline(100 * target, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("wall time, whole process (minutes)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
