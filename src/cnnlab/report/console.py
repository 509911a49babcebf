"""The report as console text: training error, test error, confusion matrix, classification report (the seed's
closing block). Printed last by the run and saved as summary.txt."""

from __future__ import annotations

from cnnlab.report.value import Report


def format_confusion(confusion: list[list[int]], names: list[str]) -> str:
    """The confusion matrix as console text (rows: true class)."""
    cells = [[str(v) for v in row] for row in confusion]
    width = max(len(c) for c in [*names, *(c for row in cells for c in row)])
    head = " " * width + "  " + " ".join(n[:width].rjust(width) for n in names)
    rows = [name[:width].rjust(width) + "  " + " ".join(c.rjust(width) for c in row)
            for name, row in zip(names, cells)]
    return "\n".join([head, *rows])


def summary(report: Report) -> str:
    return "\n".join([
        f"training error rate: {report.pct('train_eval/err')}   (training set, evaluation mode)",
        f"test error rate:     {report.pct('test/err')}   (test accuracy {report.pct('test/acc')}, "
        f"{report.images} images)",
        "",
        "confusion matrix (rows: true, columns: predicted)",
        format_confusion(report.confusion, report.class_names),
        "",
        "classification report",
        report.per_class_text,
    ]) + (f"\nrun directory: {report.run_dir}\n" if report.run_dir else "")
