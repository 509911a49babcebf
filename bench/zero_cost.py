"""Zero-cost proxies against trained accuracy: does scoring an untrained network on one batch rank a search's
trials as training does? (Issue 39's pre-screen: worth building only if the rank correlation is at least 0.5.)

    python src/search.py search=metaqnn agent=random pruner=none n_trials=50 study_name=zc-digits
    python bench/zero_cost.py outputs/search/zc-digits

For every complete trial of a study: NASWOT (Mellor et al. 2021: the log-determinant of the Hamming-similarity
kernel of the binary activation codes of one batch) and synflow (Tanaka et al. 2020: the sum of |theta x dR/dtheta|
for R the sum of the outputs on an all-ones input, every weight made positive, in float64, batch norm in eval mode),
and the parameter count as the baseline a proxy has to beat; Spearman's rank correlation of each with the trial's
validation accuracy, and each proxy's partial correlation with the parameter count held fixed (what it knows beyond
the size). Prints a Markdown table row and writes zero_cost.json into the study folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import optuna
import torch
from omegaconf import OmegaConf
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cnnlab.data import make_datamodule  # noqa: E402
from cnnlab.layers import build_network  # noqa: E402

ACTIVATIONS = (nn.ReLU, nn.GELU, nn.ELU, nn.LeakyReLU, nn.SiLU)


def naswot(net: nn.Module, images: torch.Tensor) -> float:
    """log|K|, K[i, j] = the number of units on the same side of zero for images i and j, over every activation."""
    n = len(images)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(module, args):
        codes = (args[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, ACTIVATIONS)]
    with torch.no_grad():
        net.train()(images)
    for h in handles:
        h.remove()
    return float(torch.linalg.slogdet(kernel)[1])


def synflow(net: nn.Module, input_shape: tuple[int, ...]) -> float:
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    net(torch.ones(1, *input_shape, dtype=torch.float64)).sum().backward()
    with torch.no_grad():
        return float(sum((p * p.grad).abs().sum() for p in net.parameters() if p.grad is not None))


def spearman(a: list[float], b: list[float]) -> float:
    ranks = [np.argsort(np.argsort(np.asarray(x, dtype=float))) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def partial(xy: float, xz: float, yz: float) -> float:
    """The correlation of x and y with z held fixed, from the three pairwise ones."""
    return (xy - xz * yz) / ((1 - xz**2) * (1 - yz**2)) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="a study folder (outputs/search/<name>)")
    parser.add_argument("--batch", type=int, default=64, help="images NASWOT scores on")
    parser.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA_DIR", str(ROOT / "data")))
    args = parser.parse_args()
    config = OmegaConf.load(sorted((args.study / ".hydra").glob("*/config.yaml"))[-1])
    data = make_datamodule(OmegaConf.to_container(config.data, resolve=True), args.data_dir)
    images = data.train_sample(args.batch)
    journal = optuna.storages.journal.JournalFileBackend(str(args.study / "study.journal"))
    storage = optuna.storages.JournalStorage(journal)
    study = optuna.load_study(study_name=config.study_name, storage=storage)
    rows = []
    for trial in (t for t in study.trials if t.state.name == "COMPLETE"):
        torch.manual_seed(trial.number)
        layers = trial.user_attrs["layers"]
        net = build_network(layers, data.input_shape, data.num_classes)
        scores = {"naswot": naswot(net, images), "synflow": synflow(net, data.input_shape),
                  "params": sum(p.numel() for p in net.parameters())}
        rows.append({"trial": trial.number, "val_acc": 1 - trial.values[0], **scores})
    accuracy = [r["val_acc"] for r in rows]
    rho = {k: spearman([r[k] for r in rows], accuracy) for k in ("naswot", "synflow", "params")}
    # what a proxy knows beyond the size: its rank correlation with accuracy, the parameter count held fixed
    beyond = {k: partial(rho[k], rho["params"], spearman([r[k] for r in rows], [r["params"] for r in rows]))
              for k in ("naswot", "synflow")}
    print(f"| {args.study.name} | {config.data.get('name', config.data.get('family'))} | {len(rows)} | "
          f"{rho['naswot']:.2f} ({beyond['naswot']:.2f}) | {rho['synflow']:.2f} ({beyond['synflow']:.2f}) | "
          f"{rho['params']:.2f} |")
    record = {"spearman": rho, "beyond_params": beyond, "trials": rows}
    (args.study / "zero_cost.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
