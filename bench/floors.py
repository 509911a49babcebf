"""The accuracy floors the tests assert, measured: each test's run over seeds and both thread counts, so that a floor
sits below the lowest figure with a margin, and no test's outcome depends on the CPU it runs on.

    python bench/floors.py [--seeds 0 1 2] [--threads 1 2] [--out bench/floors.json]

Prints, per run, the lowest, mean and highest figure and writes them with every value to the JSON file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# test -> (overrides, the figure it asserts)
RUNS = {
    "test_train_cli::test_default_experiment_reaches_95_percent": ((), "test/acc"),
    "test_first_afternoon::optim=sgd (12 epochs)": (("optim=sgd", "trainer.max_epochs=12", "test=false"), "val/acc"),
    "test_first_afternoon::optim=muon (3 epochs)": (("optim=muon", "trainer.max_epochs=3", "test=false"), "val/acc"),
    "test_first_afternoon::optim=rmsprop (6 epochs)": (("optim=rmsprop", "trainer.max_epochs=6", "test=false"),
                                                       "val/acc"),
    "test_stream::2 epochs at batch 64 (in memory)": (("trainer.max_epochs=2", "data.batch_size=64"), "test/acc"),
}


def measure(overrides: tuple[str, ...], key: str, seed: int, threads: int) -> float:
    from cnnlab.cli import train_plan
    from cnnlab.run.tasks import train

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        return train(train_plan(*overrides, f"seed={seed}", "logger=csv", out=Path(out) / "run"))[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="*", default=None, help="substrings of the runs to measure")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "floors.json")
    args = parser.parse_args()
    from cnnlab.schemas import register

    register("train")
    found = {}
    for name, (overrides, key) in RUNS.items():
        if args.only and not any(part in name for part in args.only):
            continue
        values = {f"seed {s}, {t} thread(s)": measure(overrides, key, s, t) for s in args.seeds for t in args.threads}
        found[name] = {"figure": key, "min": min(values.values()), "mean": statistics.mean(values.values()),
                       "max": max(values.values()), "values": values}
        print(f"{name}: {key} min {found[name]['min']:.4f} mean {found[name]['mean']:.4f} "
              f"max {found[name]['max']:.4f}", flush=True)
    args.out.write_text(json.dumps({"torch": torch.__version__, "runs": found}, indent=2) + "\n")


if __name__ == "__main__":
    main()
