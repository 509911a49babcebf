"""An experiment's recipe as a plain PyTorch loop, without Lightning: the in-run reference of `bench/gpu.py`.

Same network (built from the experiment's layer list, `init: whiten` fitted to the same images), hyperparameters
(read from the composed experiment: optimizer, per-step schedule, `model.reg`, label smoothing, batch-norm shift
learning rate, lookahead), data (the whole training split in device memory, batches cut by index), augmentation
(cnnlab's batch functions) and test-time views; bf16 autocast and channels_last on a GPU. No validation: the test
split is evaluated once at the end. Written for `best_cifar10`; any experiment of the same kind runs.

    python bench/plain_recipe.py --data-dir DATA [--experiment best_cifar10_gpu] [--epochs 16] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from overhead import _sync, train_config  # noqa: E402

from cnnlab.data import make_datamodule  # noqa: E402
from cnnlab.data.augment import augment_batch  # noqa: E402
from cnnlab.data.options import AugmentOptions  # noqa: E402
from cnnlab.layers import build_network  # noqa: E402
from cnnlab.layers.arch import read_arch  # noqa: E402
from cnnlab.model.module import WHITENING_IMAGES  # noqa: E402
from cnnlab.model.tta import vote  # noqa: E402


def param_groups(net: torch.nn.Module, lr: float, reg: float, bn_scale: float) -> list[dict]:
    """Batch-norm shifts at `bn_scale` x the learning rate and weight decay / `bn_scale`, the rest as configured."""
    shifts = {id(m.bias) for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine}
    trainable = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in shifts], "lr": lr, "weight_decay": reg},
              {"params": [p for p in trainable if id(p) in shifts], "lr": lr * bn_scale, "weight_decay": reg / bn_scale,
               "lr_scale": bn_scale}]
    return [g for g in groups if g["params"]]


def run(experiment: str, data_dir: str, device: str, epochs: int, overrides: tuple[str, ...] = ()) -> dict:
    cfg = train_config(f"experiment={experiment}", f"trainer.max_epochs={epochs}", *overrides)
    dev = torch.device(device)
    dm = make_datamodule(OmegaConf.to_container(cfg.data, resolve=True), data_dir)
    dm.prepare_data()
    dm.setup("fit")
    torch.manual_seed(cfg.seed)
    net = build_network(read_arch(OmegaConf.to_container(cfg.arch, resolve=True)).raw, dm.input_shape,
                        dm.num_classes)
    if net.needs_data_init:
        net.init_from_data(dm.train_sample(WHITENING_IMAGES))
    fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
    net = net.to(dev, memory_format=fmt)
    mean, std = dm.batching.stats_on(dev)
    train, test = dm.splits["train"], dm.splits["test"]
    x_train, y_train = train.x.to(dev), train.y.to(dev)
    parity = dm.source.flip_parity.to(dev)
    batch = min(cfg.data.batch_size, len(y_train))
    augment = AugmentOptions.read(OmegaConf.to_container(cfg.data.augment), "data.augment.")
    steps_per_epoch = len(y_train) // batch
    total = steps_per_epoch * epochs
    factory = instantiate(cfg.optim)
    optimizer = factory(param_groups(net, cfg.optim.lr, cfg.model.reg, cfg.model.bn_bias_lr_scale))
    schedule = instantiate(cfg.scheduler)(optimizer=optimizer, total_steps=total) if cfg.get("scheduler") else None
    ahead = (cfg.get("callbacks") or {}).get("lookahead")
    tensors = [*net.parameters(), *net.buffers()]
    floats = [t for t in tensors if t.is_floating_point()]
    average = [t.detach().clone() for t in floats]
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.model.label_smoothing)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")

    _sync(dev)
    start = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(y_train), device=dev)
        for b in range(steps_per_epoch):
            index = order[b * batch:(b + 1) * batch]
            x = augment_batch(x_train[index].float().div_(255), augment, parity[index], epoch, mean)
            with autocast:
                loss = loss_fn(net(((x - mean) / std).contiguous(memory_format=fmt)), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step += 1
            if ahead and step % ahead.every == 0:  # lookahead: the average moves toward the model, the model jumps
                with torch.no_grad():
                    weight = 1 - ahead.decay * min(1.0, step / total) ** ahead.power
                    torch._foreach_lerp_(average, floats, weight)
                    torch._foreach_copy_(floats, average)
    if ahead:
        with torch.no_grad():
            torch._foreach_copy_(floats, average)
    _sync(dev)
    fit_s = time.perf_counter() - start

    net.eval()
    correct = 0
    views = tuple(cfg.model.tta or ())
    with torch.no_grad(), autocast:
        for b in range(math.ceil(len(test.y) / 1000)):
            x = test.x[b * 1000:(b + 1) * 1000].to(dev).float().div_(255)
            logits = vote(net, ((x - mean) / std).contiguous(memory_format=fmt), views)
            correct += int((logits.argmax(1) == test.y[b * 1000:(b + 1) * 1000].to(dev)).sum())
    return {"experiment": experiment, "path": "plain", "epochs": epochs, "test_acc": correct / len(test.y),
            "fit_s": round(fit_s, 2), "train_img_s": round(steps_per_epoch * batch * epochs / fit_s, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--experiment", default="best_cifar10")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--override", nargs="*", default=[])
    args = parser.parse_args(argv)
    row = run(args.experiment, args.data_dir, args.device, args.epochs, tuple(args.override))
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    main()
