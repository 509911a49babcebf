"""The run's report as one value: the final metrics, the test confusion matrix, the per-class report and the curve
data. Made once, where the test loop ends (global rank 0), and handed to the sinks: files, dashboards, console."""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Report:
    metrics: dict[str, float]
    confusion: list[list[int]]  # rows: true class, columns: predicted
    class_names: list[str]
    per_class: dict[str, Any]  # scikit-learn's classification report (output_dict)
    per_class_text: str  # the same, as scikit-learn prints it
    history: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> {epoch: value}, for the curves
    run_dir: str = ""
    sample: str | None = None  # set when the figures describe a sample of the splits (debug=fast, limit_*_batches)

    @property
    def images(self) -> int:
        return sum(map(sum, self.confusion))

    def pct(self, key: str) -> str:
        value = self.metrics.get(key)
        return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def make_report(metrics: dict[str, float], confusion, class_names: list[str], history: dict[str, dict[int, float]],
                run_dir: Path, sample: str | None = None) -> Report:
    """The value, from the test loop's results (the confusion matrix a tensor, counts of the test split)."""
    import numpy as np
    from sklearn.metrics import classification_report  # imported when the report is made, not at start-up

    cm = confusion.long().numpy()
    true, pred = np.nonzero(cm)
    counts = cm[true, pred]
    y_true, y_pred = np.repeat(true, counts), np.repeat(pred, counts)  # exactly the counts of the matrix
    kwargs = dict(labels=list(range(len(class_names))), target_names=class_names, zero_division=0)
    text = classification_report(y_true, y_pred, digits=4, **kwargs)
    table = classification_report(y_true, y_pred, output_dict=True, **kwargs)
    return Report(dict(metrics), cm.tolist(), list(class_names), table, text, history, str(run_dir), sample)
