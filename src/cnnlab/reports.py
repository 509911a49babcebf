"""The seed's report, as files in the run directory: curves, confusion matrix, classification report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, and none on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import classification_report  # noqa: E402


def epoch_history(metrics_csv: Path) -> dict[str, dict[int, float]]:
    """metric -> {epoch: value} from Lightning's metrics.csv, where each epoch spreads over several rows."""
    history: dict[str, dict[int, float]] = {}
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    history.setdefault(key, {})[epoch] = float(value)
    return history


def plot_curves(metrics_csv: Path, out_png: Path) -> None:
    """Left: train and validation loss per epoch; right: train and validation error rate (the seed's figures)."""
    history = epoch_history(metrics_csv)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "err", "error rate")):
        for split in ("train", "val"):
            series = history.get(f"{split}/{metric}", {})
            if series:
                epochs = sorted(series)
                ax.plot([e + 1 for e in epochs], [series[e] for e in epochs], marker="o", ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def confusion_to_labels(cm: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) with exactly the counts of `cm`: a report depends on nothing else."""
    cm = cm.long().numpy()
    true, pred = np.nonzero(cm)
    counts = cm[true, pred]
    return np.repeat(true, counts), np.repeat(pred, counts)


def write_confusion_matrix(cm: torch.Tensor, names: list[str], out_dir: Path) -> None:
    """`confusion_matrix.csv` (rows: true class, columns: predicted) and `confusion_matrix.png`."""
    cm = cm.long()
    with open(out_dir / "confusion_matrix.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, cm.tolist()):
            writer.writerow([name, *row])
    n = len(names)
    size = min(4 + 0.5 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(cm.numpy(), cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    if n <= 30:
        ticks = range(n)
        ax.set_xticks(ticks, names, rotation=45, ha="right")
        ax.set_yticks(ticks, names)
        threshold = cm.max().item() / 2
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j].item()), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > threshold else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({cm.sum().item()} test images)")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion_matrix.png", dpi=110)
    plt.close(fig)


def write_classification_report(cm: torch.Tensor, names: list[str], out_dir: Path) -> str:
    """Per-class precision, recall, F1 and support (scikit-learn's report) as .txt and .json; returns the text."""
    y_true, y_pred = confusion_to_labels(cm)
    kwargs = dict(labels=list(range(len(names))), target_names=names, zero_division=0)
    text = classification_report(y_true, y_pred, digits=4, **kwargs)
    report = classification_report(y_true, y_pred, output_dict=True, **kwargs)
    (out_dir / "classification_report.txt").write_text(text)
    (out_dir / "classification_report.json").write_text(json.dumps(report, indent=2))
    return text


def format_confusion(cm: torch.Tensor, names: list[str]) -> str:
    """The confusion matrix as console text (rows: true class)."""
    cells = [[str(v) for v in row] for row in cm.long().tolist()]
    width = max(len(c) for c in [*names, *(c for row in cells for c in row)])
    head = " " * width + "  " + " ".join(n[:width].rjust(width) for n in names)
    rows = [name[:width].rjust(width) + "  " + " ".join(c.rjust(width) for c in row)
            for name, row in zip(names, cells)]
    return "\n".join([head, *rows])


def summary(metrics: dict[str, float], cm: torch.Tensor, names: list[str], report: str) -> str:
    """The console's closing block: training error, test error, confusion matrix, classification report."""

    def pct(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}%"

    return "\n".join([
        f"training error rate: {pct('train_eval/err')}   (training set, evaluation mode)",
        f"test error rate:     {pct('test/err')}   (test accuracy {pct('test/acc')}, "
        f"{int(cm.sum())} images)",
        "",
        "confusion matrix (rows: true, columns: predicted)",
        format_confusion(cm, names),
        "",
        "classification report",
        report,
    ])
