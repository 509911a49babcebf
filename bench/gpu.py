"""GPU benchmark in one command: time to accuracy of the shipped fast experiments, and cnnlab's speed against a
plain PyTorch loop on the same device.

    python bench/gpu.py --data-dir DATA                # CIFAR-10 to 94%, MNIST to 99%, overhead ratios
    python bench/gpu.py --data-dir DATA --only mnist --epochs 1 2 3

Each target trains `src/train.py experiment=<exp>` in a subprocess (the whole process is timed, as a user runs
it) with bf16 mixed precision and channels_last on a GPU, for each epoch budget in turn, and stops at the first
budget whose test accuracy reaches the target. Figures come from the run's results.json: `time/fit_s` (training
with per-epoch validation), `time/startup_s`, `time/total_s`. Everything printed is also written to
`--out` (JSON lines). `--device cpu` runs the same path on a CPU (the suite does that with a tiny budget).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

# name: (experiment, target test accuracy, epoch budgets tried in turn)
TARGETS = {
    "cifar10": ("best_cifar10", 0.94, [10, 15, 20, 30]),
    "mnist": ("mnist_fast", 0.99, [1, 2, 3]),
}
GPU_OVERRIDES = ("trainer=gpu", "trainer.precision=bf16-mixed", "model.channels_last=true")


def train_once(experiment: str, epochs: int, args, run_dir: Path) -> dict:
    """One whole `src/train.py` process; its results.json plus the wall time seen from outside."""
    device = GPU_OVERRIDES if args.device == "cuda" else ("trainer=cpu",)
    cmd = [sys.executable, str(ROOT / "src" / "train.py"), f"experiment={experiment}", *device,
           f"trainer.max_epochs={epochs}", "logger=csv", f"hydra.run.dir={run_dir}", *args.override]
    env = {**os.environ, "CNNLAB_DATA_DIR": str(args.data_dir)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    results = json.loads((run_dir / "results.json").read_text())
    return {"experiment": experiment, "epochs": epochs, "test_acc": results["test/acc"], "wall_s": round(wall, 2),
            **{k.removeprefix("time/"): v for k, v in results.items() if k.startswith("time/")}}


def time_to_accuracy(name: str, args, out_dir: Path) -> list[dict]:
    experiment, target, budgets = TARGETS[name]
    rows = []
    for epochs in args.epochs or budgets:
        row = train_once(experiment, epochs, args, out_dir / f"{name}_{epochs}ep") | {"target": target}
        row["reached"] = row["test_acc"] >= target
        rows.append(row)
        report(row, args.out)
        if row["reached"]:
            break
    return rows


def report(row: dict, out: Path) -> None:
    print(json.dumps(row), flush=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="holds cifar-10-batches-py/ and MNIST/raw/")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--only", nargs="+", choices=[*TARGETS, "overhead"], default=[*TARGETS, "overhead"])
    parser.add_argument("--epochs", nargs="+", type=int, help="epoch budgets to try (default: per target)")
    parser.add_argument("--overhead-images", type=int, default=50_000, help="images per epoch of the ratio runs")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "gpu.jsonl")
    parser.add_argument("--override", nargs="*", default=[], help="more train.py overrides for every run")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = args.out.parent / f"gpu_runs_{time.strftime('%Y%m%d_%H%M%S')}"
    import torch

    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    report({"device": name, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}, args.out)
    for target in args.only:
        if target in TARGETS:
            time_to_accuracy(target, args, runs)
    if "overhead" in args.only:
        import overhead

        batch = "512" if args.device == "cuda" else "128"
        for row in overhead.main(["--arch", "small", "mnist_fast", "--images", str(args.overhead_images),
                                  "--batch-size", batch, "--device", args.device]):
            report(row, args.out)


if __name__ == "__main__":
    main()
