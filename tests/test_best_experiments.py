"""The shipped `best_<data>` experiments: each builds its network on its data set's input shape with the shapes
its arch file states, and trains end to end (one epoch, CPU) on tiny files in the real on-disk layout."""

from __future__ import annotations

import json
import math

import pytest

from cnnlab.layers import build_network
from cnnlab.layers.arch import read_arch
from cnnlab.run.plans import plain
from tests import data_files
from tests.conftest import compose_train


def layers_of(cfg) -> list[dict]:
    """The experiment's layer list as it is built (its arch.width and arch.depth applied)."""
    return read_arch(plain(cfg.arch)).raw


# a GPU recipe run on the CPU (trainer=cpu) with a batch the tiny files hold
ON_CPU = ["trainer=cpu", "data.batch_size=16", "trainer.precision=32-true"]


def _cifar100(*overrides: str) -> tuple:
    """Tiny CIFAR-100 files: 60 training images (20 for validation), 40 test images."""
    write = lambda root: data_files.write_cifar100(root, n_train=60, n_test=40)  # noqa: E731
    return write, ["data.val_size=20", "data.download=false", *overrides], (3, 32, 32), 100, 40


# experiment: (writer, train.py overrides for the tiny files, input shape, classes, test images)
BEST = {
    "best_mnist": (data_files.write_mnist, ["data.val_size=10", "data.download=false"], (1, 28, 28), 10, 20),
    "best_cifar10": (data_files.write_cifar10, ["data.val_size=10", "data.download=false"], (3, 32, 32), 10, 20),
    "best_cifar10_gpu": (data_files.write_cifar10, ["data.val_size=10", "data.download=false", *ON_CPU], (3, 32, 32),
                         10, 20),
    "best_cifar100": _cifar100(),
    "best_cifar100_gpu": _cifar100(*ON_CPU),
    "best_cifar100_resnet18": _cifar100(),
    "best_fer2013": (data_files.write_fer, [], (1, 48, 48), 7, 14),
    "best_fer2013_gpu": (data_files.write_fer, ["trainer=cpu", "trainer.precision=32-true"], (1, 48, 48), 7, 14),
    "best_fer2013_binary": (data_files.write_fer, [], (1, 48, 48), 2, 4),
    "searched_fer2013": (data_files.write_fer, [], (1, 48, 48), 7, 14),
}


@pytest.mark.parametrize("experiment", list(BEST))
def test_best_arch_builds_on_its_data_set(experiment):
    _, _, shape, classes, _ = BEST[experiment]
    cfg = compose_train(f"experiment={experiment}")
    net = build_network(layers_of(cfg), shape, classes)
    assert net.rows[-1].shape == (classes,)
    before_head = {row.type: row.shape for row in net.rows[:-1]}  # the last row of each type before T
    if cfg.arch.name == "cifar_fast":  # valid pooling: 32 -> 31 -> 15 -> 7 -> 3 -> 1, one 256-vector at width 1
        w = cfg.arch.width  # best_cifar100: 1.5, airbench's Muon widths 96/384/384
        assert before_head["P"] == (round(256 * w), 1, 1) and 1.9e6 * w**2 < net.num_params < 2.1e6 * w**2
        assert net.rows[0].args == "24 k2x2 s1x1 pad valid gelu init-whiten frozen"  # airbench's 2x2 stem
        assert net.rows[1].args == f"{round(64 * w)} k3x3 s1x1 no-bias init-dirac"
        assert net.rows[3].args == "no-scale m0.4"
        assert net.rows[-1].args.endswith("x0.111")  # logits x 1/9
    if cfg.arch.name == "vgg_fer":  # four pools: 48 -> 3, then FC 4096 at width 1 (best_fer2013: width 0.5)
        w = cfg.arch.width
        assert [r.shape for r in net.rows if r.type == "P"][-1] == (round(512 * w), 3, 3)
        assert before_head["FC"] == (round(4096 * w),)
    if cfg.arch.name == "resnet18_cifar":  # 8 residual blocks, 32 -> 4 at 512 channels
        assert sum(r.type == "R" for r in net.rows) == 8 and before_head["R"] == (512, 4, 4)


def test_best_cifar100_starts_at_the_uniform_prediction():
    """The seed's CIFAR-100 run never left chance (~1%); this recipe's network starts calm: whitened stem,
    identity convolutions, scale-free batch norm and 1/9 logits give a first loss close to ln 100."""
    import math

    import torch

    cfg = compose_train("experiment=best_cifar100")
    net = build_network(layers_of(cfg), (3, 32, 32), 100)
    torch.manual_seed(0)
    x = torch.randn(64, 3, 32, 32)
    net.init_from_data(x)
    loss = torch.nn.functional.cross_entropy(net(x), torch.randint(0, 100, (64,)))
    assert abs(loss.item() - math.log(100)) < 0.05


@pytest.mark.parametrize("experiment", list(BEST))
def test_best_experiment_trains_on_tiny_files(fit, tmp_path, experiment):
    write, overrides, _, classes, n_test = BEST[experiment]
    write(tmp_path / "data")
    run = fit(f"experiment={experiment}", "trainer.max_epochs=1", *overrides, data_dir=tmp_path / "data")
    report = json.loads((run.dir / "classification_report.json").read_text())
    assert report["macro avg"]["support"] == n_test
    assert len(report) - 3 == classes  # one row per class, plus accuracy and the two averages
    results = run.results()
    correct = results["test/acc"] * n_test  # the accuracy is a count of the test images the report shows
    per_class = sum(report[c]["recall"] * report[c]["support"] for c in list(report)[:classes])
    assert abs(correct - round(correct)) < 1e-3 and round(correct) == round(per_class)
    assert results["time/fit_s"] > 0 and math.isfinite(results["train/loss"])


@pytest.mark.parametrize("data", ["mnist", "fer2013", "fer2013_binary", "cifar10", "cifar100"])
def test_seed_experiments_do_not_augment(data):
    """The seed trained without augmentation; its data sets' own defaults (crops and flips for CIFAR and FER2013)
    must not leak into `experiment=seed_<data>`."""
    from cnnlab.data import make_datamodule

    cfg = compose_train(f"experiment=seed_{data}")
    from cnnlab.data.options import AugmentOptions

    assert make_datamodule(cfg.data, "unused").options.augment == AugmentOptions()
