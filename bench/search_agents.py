"""Search agents (random, TPE, regularized evolution, MetaQNN's Q-learning) or pruners at equal budget on the same
layer-by-layer space.

    python bench/search_agents.py --data-dir ../shared/data --trials 30 --seeds 0 1 2 \
        --override "search.conv.num_output=[8,16,32]"
    python bench/search_agents.py --data-dir ../shared/data --agents tpe --pruners none hyperband --epochs 4 \
        --trials 20 --override "pruner.reduction_factor=2" --out bench/search_pruners.png
    python bench/search_agents.py --data-dir ../shared/data --agents tpe --epochs 2 --variants epochs= \
        "seconds=search.fidelity=seconds search.seconds=7" --out bench/search_fidelity.png

Every (agent, pruner, variant, seed) is one `src/search.py agent=<agent> search=metaqnn` study on real MNIST with a
per-trial budget that fits two CPU cores (a fixed training subset, `--epochs` epochs); then each combination's best
list over its seeds is retrained with the study's hand-over command at full budget (every training image but the
`--val-size` validation ones, `--final-epochs` epochs) and tested on the official test set. Writes `--out` (a PNG:
best validation error so far against trials, against epochs trained and against wall time, one line per seed) and a
JSON beside it, with each study's best at equal wall time (that of the quickest study of its seed).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGENTS = ("random", "tpe", "evolution", "qlearning")
PRUNERS = ("none", "median", "hyperband")


def run(cmd: list[str], data_dir: Path) -> None:
    env = {**os.environ, "CNNLAB_DATA_DIR": str(data_dir), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def search(agent: str, pruner: str, variant: str, seed: int, args) -> Path:
    folder = args.work / "-".join(filter(None, (agent, pruner, variant, str(seed))))
    if not (folder / "trials.csv").is_file():
        run(["src/search.py", f"agent={agent}", "search=metaqnn", "data=mnist", "data.download=false",
             f"data.train_size={args.train_size}", f"data.val_size={args.val_size}", f"search.epochs={args.epochs}",
             f"n_trials={args.trials}", f"sampler_seed={seed}", f"pruner={pruner}",
             f"study_name=bench-{folder.name}", f"hydra.run.dir={folder}", *args.override,
             *args.variants.get(variant, [])], args.data_dir)
    return folder


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition("=")
    return name, overrides.split()


def curve(folder: Path) -> tuple[list[float], list[float], list[int]]:
    """After each trial: the best validation error so far, the wall time and the epochs spent on trials so far."""
    with open(folder / "trials.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["number"]))
    best, spent, trained, errors, times, epochs = 1.0, 0.0, 0, [], [], []
    for row in rows:
        spent += float(row["seconds"] or 0)
        trained += int(row.get("epochs") or 0)
        if row["state"] == "COMPLETE":
            best = min(best, float(row["values"].split()[0]))
        errors.append(best)
        times.append(spent)
        epochs.append(trained)
    return errors, times, epochs


def at_time(curve: tuple, seconds: float) -> float:
    """A study's best validation error once it had trained `seconds` (1.0 before its first trial ended)."""
    errors, times, _ = curve
    return min([e for e, t in zip(errors, times) if t <= seconds + 1e-9], default=1.0)


def retrain(key: str, folder: Path, args) -> dict:
    """The study's winner through its hand-over command, on all training images for --final-epochs, tested."""
    out = args.work / f"final-{key}"
    if not (out / "results.json").is_file():
        run(["src/train.py", "--config-dir", str(folder), "experiment=best_experiment", "data.train_size=null",
             f"trainer.max_epochs={args.final_epochs}", f"hydra.run.dir={out}"], args.data_dir)
    results = json.loads((out / "results.json").read_text())
    return {"test_acc": results["test/acc"], "val_acc": results["val/acc"], "seconds": results["time/total_s"],
            "params": int((out / "arch_table.txt").read_text().rsplit(" parameters", 1)[0].rsplit(" ", 1)[1]
                          .replace(",", ""))}


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({key for key, _ in curves})
    colours = dict(zip(keys, ("tab:grey", "tab:blue", "tab:green", "tab:red", "tab:orange", "tab:purple")))
    fig, (by_trial, by_epochs, by_time) = plt.subplots(1, 3, figsize=(15, 4.2))
    for (key, seed), (errors, times, epochs) in curves.items():
        label = key if seed == min(s for k, s in curves if k == key) else None
        style = {"color": colours[key], "alpha": 0.8, "label": label}
        by_trial.plot(range(1, len(errors) + 1), [100 * e for e in errors], **style)
        by_epochs.plot(epochs, [100 * e for e in errors], **style)
        by_time.plot([t / 60 for t in times], [100 * e for e in errors], **style)
    by_trial.set_xlabel("trials")
    by_epochs.set_xlabel("epochs trained by the study")
    by_time.set_xlabel("wall time spent training trials (minutes)")
    for ax in (by_trial, by_epochs, by_time):
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
    parser.add_argument("--final-epochs", type=int, default=3, help="0: no retraining of the winners")
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--pruners", nargs="+", default=["none"], choices=PRUNERS)
    parser.add_argument("--override", nargs="*", default=[], help="search.py overrides for every study, e.g. "
                        "search.conv.num_output=[8,16,32] (a narrower space, for a CPU)")
    parser.add_argument("--variants", nargs="*", default=[], type=parse_variant, metavar="NAME=OVERRIDES",
                        help="studies that differ in overrides, e.g. epochs= 'seconds=search.fidelity=seconds "
                        "search.seconds=7' (space-separated overrides after the first =)")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench" / "search_agents")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "search_agents.png")
    args = parser.parse_args(argv)
    args.variants = dict(args.variants)
    args.work.mkdir(parents=True, exist_ok=True)
    start, curves, summary = time.perf_counter(), {}, {}
    keys = [(a, p, v) for a in args.agents for p in args.pruners for v in args.variants or [""]]
    varied = [k for k, n in enumerate((args.agents, args.pruners, args.variants)) if len(n) > 1] or [0]
    name = {key: "/".join(key[k] for k in varied) for key in keys}  # what differs between the studies
    for seed in args.seeds:  # seeds outermost: a slow spell of the machine hits every agent alike
        for key in keys:
            errors, times, epochs = curve(search(*key, seed, args))
            curves[(name[key], seed)] = (errors, times, epochs)
            print(f"{name[key]:10s} seed {seed}: best val error {errors[-1]:.4f} after {len(errors)} "
                  f"trials, {epochs[-1]} epochs, {times[-1] / 60:.1f} min of training", flush=True)
    # equal wall time: each seed's studies compared at the training time of its quickest one
    equal = {s: min(curves[(k, s)][1][-1] for k in name.values()) for s in args.seeds}
    for agent, pruner, variant in keys:
        key = name[(agent, pruner, variant)]
        seeds = [s for k, s in curves if k == key]
        at_equal = {s: at_time(curves[(key, s)], equal[s]) for s in seeds}
        best_seed = min(seeds, key=lambda s: curves[(key, s)][0][-1])
        final = retrain(key.replace("/", "-"), search(agent, pruner, variant, best_seed, args), args) \
            if args.final_epochs else {}
        summary[key] = {"best_val_err_per_seed": {s: curves[(key, s)][0][-1] for s in seeds},
                        "mean_best_val_err": sum(curves[(key, s)][0][-1] for s in seeds) / len(seeds),
                        "best_val_err_at_equal_time_per_seed": at_equal,
                        "mean_best_val_err_at_equal_time": sum(at_equal.values()) / len(seeds),
                        "epochs_per_seed": {s: curves[(key, s)][2][-1] for s in seeds},
                        "trial_minutes_per_seed": {s: curves[(key, s)][1][-1] / 60 for s in seeds},
                        "retrained_from_seed": best_seed, **{f"final_{k}": v for k, v in final.items()}}
        print(f"{key:10s} mean best val error {summary[key]['mean_best_val_err']:.4f} (at equal wall time "
              f"{summary[key]['mean_best_val_err_at_equal_time']:.4f}), mean epochs "
              f"{sum(summary[key]['epochs_per_seed'].values()) / len(seeds):.0f}" + (
                  f"; its best list (seed {best_seed}) retrained: test accuracy {final['test_acc']:.4f}, "
                  f"{final['params']:,} params" if final else ""), flush=True)
    plot(curves, args.out)
    record = {"args": {k: str(v) for k, v in vars(args).items()}, "studies": summary,
              "curves": {f"{k}-{s}": {"best_val_err": e, "seconds": t, "epochs": n}
                         for (k, s), (e, t, n) in curves.items()},
              "wall_s": time.perf_counter() - start}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return record


if __name__ == "__main__":
    main()
