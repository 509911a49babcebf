"""One training step of an arch (forward, backward, SGD step) against batch size and memory layout.

    python bench/step_time.py --arch cifar_fast --input 3 32 32 --batch 256 512 1024

Plain PyTorch on the network cnnlab builds from the layer list, random data, medians of `--repeats` steps after
two warm-up steps; reported as images per second and seconds per 50,000-image epoch. Chooses a recipe's batch
size and `model.channels_last` for a machine (on the 2-core development CPU: batch 512, channels_last).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def step_seconds(net: torch.nn.Module, shape, batch: int, channels_last: bool, repeats: int, classes: int) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.randn(batch, *shape).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (batch,))
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9, nesterov=True)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cifar_fast")
    parser.add_argument("--width", type=float, default=1.0, help="arch.width: x every C and FC layer's outputs")
    parser.add_argument("--input", type=int, nargs=3, default=[3, 32, 32])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from omegaconf import OmegaConf
    from overhead import train_config

    from cnnlab.layers import build_network
    from cnnlab.layers.arch import read_arch

    arch = train_config(f"arch={args.arch}", f"arch.width={args.width}").arch
    layers = read_arch(OmegaConf.to_container(arch, resolve=True)).raw
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, arch {args.arch}, input {args.input}")
    rows = []
    for channels_last in (True, False):
        for batch in args.batch:
            torch.manual_seed(0)
            net = build_network(layers, tuple(args.input), args.classes)
            seconds = step_seconds(net, args.input, batch, channels_last, args.repeats, args.classes)
            row = {"batch": batch, "channels_last": channels_last, "step_s": seconds, "img_s": batch / seconds,
                   "epoch_50k_s": 50_000 / batch * seconds}
            rows.append(row)
            print(f"batch {batch:5d} {'channels_last' if channels_last else 'contiguous   '}  {seconds:6.3f} s/step  "
                  f"{row['img_s']:7,.0f} img/s  {row['epoch_50k_s']:6.0f} s per 50,000 images", flush=True)
    return rows


if __name__ == "__main__":
    main()
