"""Random search, TPE and MetaQNN's Q-learning agent at equal budget on the same layer-by-layer space.

    python bench/search_agents.py --data-dir ../shared/data --trials 30 --seeds 0 1 2 \
        --override "search.conv.num_output=[8,16,32]"

Every (agent, seed) is one `src/search.py agent=<agent> search=metaqnn` study on real MNIST with a per-trial
budget that fits two CPU cores (a fixed training subset, `--epochs` epochs, no pruning, so every trial costs
the same kind of work); then each agent's best list over its seeds is retrained at full budget (every training
image but the `--val-size` validation ones, `--final-epochs` epochs) and tested on the official test set.
Writes `--out` (a PNG: best validation error so far against trials and against wall time, one line per seed)
and a JSON beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGENTS = ("random", "tpe", "qlearning")


def run(cmd: list[str], data_dir: Path) -> None:
    env = {**os.environ, "CNNLAB_DATA_DIR": str(data_dir), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def search(agent: str, seed: int, args) -> Path:
    folder = args.work / f"{agent}-{seed}"
    if not (folder / "trials.csv").is_file():
        run(["src/search.py", f"agent={agent}", "search=metaqnn", "data=mnist", "data.download=false",
             f"data.train_size={args.train_size}", f"data.val_size={args.val_size}", f"search.epochs={args.epochs}",
             f"n_trials={args.trials}", f"sampler_seed={seed}", "pruning=false", f"study_name=bench-{agent}-{seed}",
             f"hydra.run.dir={folder}", *args.override], args.data_dir)
    return folder


def curve(folder: Path) -> tuple[list[float], list[float], list[dict]]:
    """Best validation error so far after each trial, the wall time spent on trials so far, and the rows."""
    with open(folder / "trials.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["number"]))
    best, spent, errors, times = 1.0, 0.0, [], []
    for row in rows:
        spent += float(row["seconds"] or 0)
        if row["state"] == "COMPLETE":
            best = min(best, float(row["values"].split()[0]))
        errors.append(best)
        times.append(spent)
    return errors, times, rows


def retrain(agent: str, folder: Path, args) -> dict:
    """The agent's best list, trained on all training images for --final-epochs and tested."""
    out = args.work / f"final-{agent}"
    if not (out / "results.json").is_file():
        arch = folder / "best_arch.yaml"
        found = re.findall(r"(optim\.lr|model\.reg|data\.batch_size)=(\S+)", arch.read_text().split("\nname:")[0])
        run(["src/train.py", "arch=file", f"arch.path={arch}", "data=mnist", "data.download=false",
             f"data.val_size={args.val_size}", *(f"{k}={v}" for k, v in found),
             f"trainer.max_epochs={args.final_epochs}", f"hydra.run.dir={out}"], args.data_dir)
    results = json.loads((out / "results.json").read_text())
    return {"test_acc": results["test/acc"], "val_acc": results["val/acc"], "seconds": results["time/total_s"],
            "params": int((out / "arch_table.txt").read_text().rsplit(" parameters", 1)[0].rsplit(" ", 1)[1]
                          .replace(",", ""))}


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(AGENTS, ("tab:grey", "tab:blue", "tab:red")))
    fig, (by_trial, by_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (agent, seed), (errors, times) in curves.items():
        label = agent if seed == min(s for a, s in curves if a == agent) else None
        by_trial.plot(range(1, len(errors) + 1), [100 * e for e in errors], color=colours[agent], alpha=0.8,
                      label=label)
        by_time.plot([t / 60 for t in times], [100 * e for e in errors], color=colours[agent], alpha=0.8,
                     label=label)
    by_trial.set_xlabel("trials")
    by_time.set_xlabel("wall time spent training trials (minutes)")
    for ax in (by_trial, by_time):
        ax.set_ylabel("best validation error so far (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("MNIST, MetaQNN space, equal budget: one line per seed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--final-epochs", type=int, default=3)
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--override", nargs="*", default=[], help="search.py overrides for every study, e.g. "
                        "search.conv.num_output=[8,16,32] (a narrower space, for a CPU)")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench" / "search_agents")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "search_agents.png")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    start, curves, summary = time.perf_counter(), {}, {}
    for seed in args.seeds:  # seeds outermost: a slow spell of the machine hits every agent alike
        for agent in args.agents:
            errors, times, _ = curve(search(agent, seed, args))
            curves[(agent, seed)] = (errors, times)
            print(f"{agent:9s} seed {seed}: best val error {errors[-1]:.4f} after {len(errors)} trials, "
                  f"{times[-1] / 60:.1f} min of training", flush=True)
    for agent in args.agents:
        seeds = [s for a, s in curves if a == agent]
        best_seed = min(seeds, key=lambda s: curves[(agent, s)][0][-1])
        final = retrain(agent, args.work / f"{agent}-{best_seed}", args)
        summary[agent] = {"best_val_err_per_seed": {s: curves[(agent, s)][0][-1] for s in seeds},
                          "mean_best_val_err": sum(curves[(agent, s)][0][-1] for s in seeds) / len(seeds),
                          "trial_minutes_per_seed": {s: curves[(agent, s)][1][-1] / 60 for s in seeds},
                          "retrained_from_seed": best_seed, **{f"final_{k}": v for k, v in final.items()}}
        print(f"{agent:9s} mean best val error {summary[agent]['mean_best_val_err']:.4f}; its best list "
              f"(seed {best_seed}) retrained: test accuracy {final['test_acc']:.4f}, {final['params']:,} params",
              flush=True)
    plot(curves, args.out)
    record = {"args": {k: str(v) for k, v in vars(args).items()}, "agents": summary,
              "curves": {f"{a}-{s}": {"best_val_err": e, "seconds": t} for (a, s), (e, t) in curves.items()},
              "wall_s": time.perf_counter() - start}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return record


if __name__ == "__main__":
    main()
