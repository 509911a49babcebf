"""The report's figures, drawn once as PNG bytes that the files and every dashboard share: the seed's curves (loss
and error rate per epoch, train and validation) and the test confusion matrix."""

import io

from cnnlab.report.value import Report


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, and none on a cluster node
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    pyplot().close(fig)
    return buffer.getvalue()


def has_curves(report: Report) -> bool:
    return any(report.history.get(f"{split}/{metric}") for split in ("train", "val") for metric in ("loss", "err"))


def curves_png(report: Report) -> bytes:
    """Left: train and validation loss per epoch; right: train and validation error rate (the seed's figures)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "err", "error rate")):
        for split in ("train", "val"):
            series = report.history.get(f"{split}/{metric}", {})
            if series:
                epochs = sorted(series)
                ax.plot([e + 1 for e in epochs], [series[e] for e in epochs], marker="o", ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    return _png(fig)


def confusion_png(report: Report) -> bytes:
    """Counts in every cell up to 30 classes. Beyond, each row as shares of its true class (so that a class's recall
    is its diagonal cell and its confusions show at any class size), a square cell per pair, and every class named
    on both axes in small type."""
    import numpy as np

    plt = pyplot()
    cm, names = np.array(report.confusion), report.class_names
    n = len(names)
    if n <= 30:
        size = 4 + 0.5 * n
        fig, ax = plt.subplots(figsize=(size, size * 0.85))
        image = ax.imshow(cm, cmap="Blues")
        ticks = range(n)
        ax.set_xticks(ticks, names, rotation=45, ha="right")
        ax.set_yticks(ticks, names)
        threshold = cm.max() / 2
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > threshold else "black")
        fig.colorbar(image, ax=ax, fraction=0.046)
    else:
        shares = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        side = min(8 + 0.16 * n, 40)
        fig, ax = plt.subplots(figsize=(side, side))
        image = ax.imshow(shares, cmap="magma_r", vmin=0, vmax=1, interpolation="nearest")
        ticks, font = range(n), max(3.0, min(8.0, 600 / n))
        ax.set_xticks(ticks, names, rotation=90, fontsize=font)
        ax.set_yticks(ticks, names, fontsize=font)
        ax.set_xticks(np.arange(-0.5, n, 10), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 10), minor=True)
        ax.grid(which="minor", color="0.85", linewidth=0.4)
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01, label="share of the true class")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({cm.sum()} test images)")
    fig.tight_layout()
    return _png(fig)
