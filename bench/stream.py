"""Streamed data (`data=stream`) against the in-memory path, with the real commands, alone on the machine.

    python bench/stream.py cifar --jpeg DATA/cifar10_jpeg [--epochs 2]   # shards time, loader and training img/s,
                                                                        # accuracy after best_cifar10's first epochs
    python bench/stream.py memory [--sizes 20000 200000]                 # peak memory of a run as the data grows
    python bench/stream.py folder-peak --root DIR                        # data=folder's peak while loading DIR

`cifar`: writes the shards of the CIFAR-10 JPEG folders with `src/prepare.py` (timed, whole command), measures
images per second of each training loader alone (batches as the network gets them: decoded, augmented, normalised),
then trains `experiment=best_cifar10` for `--epochs` epochs from the folders in memory (`data=folder`) and from the
shards (`data=stream`), the same network, batch, split and seed, and reads each run's training img/s and test
accuracy. `memory`: writes synthetic 64x64 JPEG folders of each size, their shards, and runs 100 training steps plus
the test on each, sampling the memory of the whole process tree (training process and loader workers, PSS).
Results are printed and written as JSON next to this script (`stream_<mode>.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VAL_FRACTION = 5000 / 60000  # best_cifar10's 5,000 validation images, from the folders' 60,000


def command(script: str, *overrides: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "src" / script), *overrides], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"{script} {' '.join(overrides)} failed:\n{proc.stderr[-3000:]}")
    return proc, time.perf_counter() - start


def prepare(root: Path, out: Path, *overrides: str) -> tuple[float, float]:
    """Shards of an image folder; (whole command seconds, writing seconds as prepare.py reports them)."""
    _, seconds = command("prepare.py", "data=folder", f"data.root={root}", f"data.val_fraction={VAL_FRACTION}",
                         f"out={out}", f"hydra.run.dir={out.parent / 'prepare_run'}", *overrides)
    return seconds, json.loads((out / "cnnlab.json").read_text())["seconds"]


def loader_rate(data_cfg: dict, batches: int = 40) -> float:
    """Training batches per second of a data module alone, as the network would get them, in images per second."""
    import pytorch_lightning as pl

    from cnnlab.data import make_datamodule

    dm = make_datamodule(data_cfg, ROOT / "data")
    dm.setup("fit")

    class _Trainer:  # what on_after_batch_transfer asks of a trainer
        training, current_epoch, world_size, global_rank = True, 0, 1, 0
        strategy = type("S", (), {"root_device": __import__("torch").device("cpu")})()
        fit_loop = type("F", (), {"restarting": False})()

    dm.trainer = _Trainer()
    pl.seed_everything(0, verbose=False)
    loader = dm.train_dataloader()
    images, start = 0, None
    for k, batch in enumerate(loader):
        if k == 3:  # workers started, first chunks read
            images, start = 0, time.perf_counter()
        x, _ = dm.on_after_batch_transfer(batch, 0)
        images += len(x)
        if k == batches + 3:
            break
    return images / (time.perf_counter() - start)


def train_rate_and_accuracy(run_dir: Path) -> dict:
    log = (run_dir / "train.log").read_text()
    rates = [float(r.replace(",", "")) for r in re.findall(r"train loss .* ([\d,]+) img/s", log)]  # epoch lines
    results = json.loads((run_dir / "results.json").read_text())
    return {"img_per_s_by_epoch": rates, "test_acc": results["test/acc"], "val_acc": results["val/acc"],
            "fit_s": results["time/fit_s"]}


def cifar(jpeg: Path, epochs: int, work: Path, batch_size: int = 512) -> dict:
    shards = work / "shards"
    whole_s, write_s = prepare(jpeg, shards)
    print(f"shards of {jpeg} (60,000 JPEGs): {write_s:.1f} s writing, {whole_s:.1f} s whole command", flush=True)
    batch = {"batch_size": batch_size, "augment": {"crop_padding": 2, "padding_mode": "reflect", "flip": "alternate"}}
    folder_cfg = {"family": "folder", "root": str(jpeg), "val_fraction": VAL_FRACTION, **batch}
    stream_cfg = {"family": "stream", "root": str(shards), **batch}
    loader = {"folder": loader_rate(folder_cfg), "stream": loader_rate(stream_cfg)}
    print(f"loader alone, img/s: in memory {loader['folder']:,.0f}, stream {loader['stream']:,.0f}", flush=True)
    runs = {}
    for name, data in (("folder", ("data=folder", f"data.root={jpeg}", f"data.val_fraction={VAL_FRACTION}")),
                       ("stream", ("data=stream", f"data.root={shards}"))):
        run_dir = work / f"train_{name}"
        command("train.py", "experiment=best_cifar10", *data, f"trainer.max_epochs={epochs}",
                f"data.batch_size={batch_size}", f"hydra.run.dir={run_dir}")
        runs[name] = train_rate_and_accuracy(run_dir)
        print(f"{name}: {runs[name]}", flush=True)
    # the first epoch includes start-up effects (the stream's chunk reads, the folder's cache): the last epoch's rate
    ratio = runs["stream"]["img_per_s_by_epoch"][-1] / runs["folder"]["img_per_s_by_epoch"][-1]
    return {"shards_write_s": write_s, "shards_command_s": whole_s, "loader_img_per_s": loader, "runs": runs,
            "train_speed_ratio_stream_over_memory": ratio,
            "accuracy_gap_points": 100 * (runs["folder"]["test_acc"] - runs["stream"]["test_acc"])}


def synthetic_folder(root: Path, n: int, classes: int = 10, size: int = 64) -> None:
    """n smooth 64x64 JPEGs (a class-dependent gradient plus noise: about 2 KB each), in class folders."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write_images, [(root, c, range(c, n, classes), size) for c in range(classes)]))


def _write_images(task) -> None:
    import numpy as np
    from PIL import Image

    root, c, indices, size = task
    (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(c)
    ramp = np.linspace(0, 1, size)
    base = np.stack([np.outer(ramp, np.ones(size)) * (50 + 20 * c), np.outer(np.ones(size), ramp) * 200,
                     np.full((size, size), 25.0 * c)], -1)
    for i in indices:
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"class{c}" / f"{i:07d}.jpg", quality=85)


def tree_memory(pid: int) -> tuple[int, int]:
    """(proportional set size, its anonymous part) in bytes of a process and all its descendants: loader workers are
    forked, so their resident sizes would count the pages they share with the training process again; PSS divides
    each shared page among its sharers, so the sum is the tree's real footprint."""
    total = anon = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in rollup.splitlines()[1:] if ":" in line)
        total += int(fields.get("Pss", "0 kB").split()[0]) * 1024
        anon += int(fields.get("Pss_Anon", "0 kB").split()[0]) * 1024
        stack += [int(c) for c in children]
    return total, anon


class PeakMemory:
    """`with PeakMemory(pid, every_s) as peak:` samples `tree_memory(pid)` in a thread; `peak.pss` and `peak.anon` are
    the largest seen (bytes)."""

    def __init__(self, pid: int, every_s: float):
        self.pid, self.every_s, self.pss, self.anon = pid, every_s, 0, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._done.is_set():
            pss, anon = tree_memory(self.pid)
            self.pss, self.anon = max(self.pss, pss), max(self.anon, anon)
            time.sleep(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def peak_memory(*overrides: str) -> dict:
    proc = subprocess.Popen([sys.executable, str(ROOT / "src" / "train.py"), *overrides], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    start = time.perf_counter()
    with PeakMemory(proc.pid, 0.1) as peak:
        _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"train.py {' '.join(overrides)} failed:\n{err[-3000:]}")
    return {"peak_pss_mb": peak.pss / 2**20, "peak_pss_anon_mb": peak.anon / 2**20,
            "seconds": time.perf_counter() - start}


def memory(sizes: list[int], work: Path, steps: int = 100) -> dict:
    out = {}
    for n in sizes:
        folder = work / f"images_{n}"
        start = time.perf_counter()
        synthetic_folder(folder, n)
        made = time.perf_counter() - start
        _, write_s = prepare(folder, work / f"shards_{n}", "data.val_fraction=0.05", "data.test_fraction=0.05")
        common = ("arch=small", f"trainer.limit_train_batches={steps}", "data.batch_size=256", "trainer.max_epochs=1")
        stream = peak_memory("data=stream", f"data.root={work / f'shards_{n}'}", *common,
                             f"hydra.run.dir={work / f'run_stream_{n}'}")
        in_memory = peak_memory("data=folder", f"data.root={folder}", "data.val_fraction=0.05",
                                "data.test_fraction=0.05", "data.cache=false", *common,
                                f"hydra.run.dir={work / f'run_memory_{n}'}")
        out[n] = {"images_written_s": made, "shards_write_s": write_s, "stream": stream, "in_memory": in_memory}
        print(n, out[n], flush=True)
    first, last = out[sizes[0]]["stream"], out[sizes[-1]]["stream"]
    out["stream_growth"] = {k: last[k] / first[k] - 1 for k in ("peak_pss_mb", "peak_pss_anon_mb")}
    return out


def folder_peak(root: Path) -> dict:
    """Peak memory (PSS, this process) while `data=folder` loads a folder into memory, against what it then holds."""
    from cnnlab.data import make_datamodule

    base = tree_memory(os.getpid())[0]
    with PeakMemory(os.getpid(), 0.05) as peak:
        dm = make_datamodule({"family": "folder", "root": str(root), "cache": False, "val_fraction": 0.05,
                              "test_fraction": 0.05}, ROOT / "data")
        dm.setup()
    held = sum(s.x.nbytes for s in dm.splits.values())
    return {"base_mb": base / 2**20, "peak_above_base_mb": (peak.pss - base) / 2**20, "held_mb": held / 2**20,
            "peak_over_held": (peak.pss - base) / held}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["cifar", "memory", "folder-peak"])
    parser.add_argument("--jpeg", type=Path, help="the CIFAR-10 JPEG folders (train/ and test/)")
    parser.add_argument("--root", type=Path, help="folder-peak: an image folder to load in memory")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512, help="cifar: best_cifar10's batch")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if args.mode == "cifar":
            if args.jpeg is None:
                parser.error("cifar needs --jpeg DIR (the CIFAR-10 JPEG folders)")
            result = cifar(args.jpeg.resolve(), args.epochs, work, args.batch_size)
        elif args.mode == "folder-peak":
            if args.root is None:
                parser.error("folder-peak needs --root DIR (an image folder)")
            result = folder_peak(args.root.resolve())
        else:
            result = memory(args.sizes, work, args.steps)
    out = args.out or Path(__file__).with_name(f"stream_{args.mode.replace('-', '_')}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
