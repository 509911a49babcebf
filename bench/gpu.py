"""GPU benchmark in one command: time to accuracy of the shipped fast experiments, each beside a plain PyTorch loop
of the same recipe, with the GPU's busy share sampled during every run; and cnnlab's speed against a plain loop.

    python bench/gpu.py --data-dir DATA                # CIFAR-10 to 90.7%, MNIST to 99%, overhead ratios
    python bench/gpu.py --data-dir DATA --only mnist --epochs 1 2 3

Each target trains `src/train.py experiment=<exp>` in a subprocess (the whole process is timed, as a user runs
it; on a GPU with `trainer=gpu`: bf16 mixed precision, channels_last, data in GPU memory), for each epoch budget in
turn, and stops at the first budget whose test accuracy reaches the target. Figures come from the run's
results.json: `time/fit_s` (training with per-epoch validation), `time/startup_s`, `time/total_s`. Then
`bench/plain_recipe.py` trains the same recipe for the same epochs in a hand-written loop (`path: plain`, no
validation). `gpu_busy_pct` is the mean of nvidia-smi's utilization samples (every 200 ms) over each run. The
CIFAR-10 target is 90.7%, what the JPEG copy in ../shared/data allows (airbench94's own script: 90.69%; its 94% is
for the original files). Everything printed is also written to `--out` (JSON lines). `--device cpu` runs the same
path on a CPU (the suite does that with a tiny budget).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

# name: ({device: experiment}, target test accuracy, epoch budgets tried in turn)
TARGETS = {
    "cifar10": ({"cuda": "best_cifar10_gpu", "cpu": "best_cifar10"}, 0.907, [10, 16, 20]),
    "mnist": ({"cuda": "mnist_fast", "cpu": "mnist_fast"}, 0.99, [1, 2, 3]),
}
PLAIN_REFERENCE = ("cifar10",)  # targets with a plain-loop row (bench/plain_recipe.py)


class Busy:
    """The GPU's utilization (%) sampled by nvidia-smi while the block runs; None without a GPU or nvidia-smi."""

    def __init__(self, device: str):
        self.command = shutil.which("nvidia-smi") if device == "cuda" else None
        self.mean: float | None = None

    def __enter__(self):
        if self.command:
            self.proc = subprocess.Popen([self.command, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-i", "0", "-lms", "200"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        if self.command:
            self.proc.terminate()
            samples = [float(line) for line in self.proc.communicate()[0].split() if line.strip().isdigit()]
            self.mean = round(sum(samples) / len(samples), 1) if samples else None


def train_once(experiment: str, epochs: int, args, run_dir: Path) -> dict:
    """One whole `src/train.py` process; its results.json plus the wall time seen from outside."""
    cmd = [sys.executable, str(ROOT / "src" / "train.py"), f"experiment={experiment}", f"trainer={args.device_preset}",
           f"trainer.max_epochs={epochs}", "logger=csv", f"hydra.run.dir={run_dir}", *args.override]
    env = {**os.environ, "CNNLAB_DATA_DIR": str(args.data_dir)}
    start = time.perf_counter()
    with Busy(args.device) as busy:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    results = json.loads((run_dir / "results.json").read_text())
    return {"experiment": experiment, "path": "cnnlab", "epochs": epochs, "test_acc": results["test/acc"],
            "wall_s": round(wall, 2), "gpu_busy_pct": busy.mean,
            **{k.removeprefix("time/"): v for k, v in results.items() if k.startswith("time/")}}


def time_to_accuracy(name: str, args, out_dir: Path) -> list[dict]:
    experiments, target, budgets = TARGETS[name]
    experiment = experiments[args.device]
    rows = []
    for epochs in args.epochs or budgets:
        row = train_once(experiment, epochs, args, out_dir / f"{name}_{epochs}ep") | {"target": target}
        row["reached"] = row["test_acc"] >= target
        rows.append(row)
        report(row, args.out)
        if row["reached"]:
            break
    if name in PLAIN_REFERENCE:  # the same recipe and budget in a hand-written loop, in this process
        import plain_recipe

        with Busy(args.device) as busy:
            plain = plain_recipe.run(experiment, str(args.data_dir), args.device, rows[-1]["epochs"],
                                     tuple(args.override))
        plain |= {"gpu_busy_pct": busy.mean, "target": target, "reached": plain["test_acc"] >= target,
                  "cnnlab_fit_s / plain_fit_s": round(rows[-1]["fit_s"] / plain["fit_s"], 3)}
        rows.append(plain)
        report(plain, args.out)
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
    args.device_preset = "gpu" if args.device == "cuda" else "cpu"
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
