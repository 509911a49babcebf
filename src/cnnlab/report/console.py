"""The report as console text: training error, test error, confusion matrix, classification report (the seed's
closing block). Printed last by the run and saved as summary.txt."""

from cnnlab.report.value import Report


def format_confusion(confusion: list[list[int]], names: list[str]) -> str:
    """The confusion matrix as console text (rows: true class)."""
    cells = [[str(v) for v in row] for row in confusion]
    width = max(len(c) for c in [*names, *(c for row in cells for c in row)])
    head = " " * width + "  " + " ".join(n[:width].rjust(width) for n in names)
    rows = [name[:width].rjust(width) + "  " + " ".join(c.rjust(width) for c in row)
            for name, row in zip(names, cells)]
    return "\n".join([head, *rows])


FULL_UP_TO = 20  # classes: beyond, the console shows the worst classes and the largest confusions, the files all


def weakest(report: Report, n: int = 10) -> str:
    """The classes with the lowest recall, with their precision and F1."""
    rows = [(name, report.per_class[name]) for name in report.class_names]
    rows.sort(key=lambda item: (item[1]["recall"], item[1]["f1-score"]))
    width = max(len(name) for name, _ in rows[:n])
    head = f"{'class':>{width}}  recall  precision      f1  support"
    lines = [f"{name:>{width}}  {r['recall']:6.1%}  {r['precision']:9.1%}  {r['f1-score']:6.1%}  {int(r['support']):7d}"
             for name, r in rows[:n]]
    return "\n".join([head, *lines])


def confusions(report: Report, n: int = 10) -> str:
    """The largest off-diagonal cells: which class is taken for which, and how often."""
    cells = [(count, t, p) for t, row in enumerate(report.confusion) for p, count in enumerate(row) if t != p and count]
    cells.sort(reverse=True)
    names, totals = report.class_names, [sum(row) for row in report.confusion]
    width = max([len(names[t]) for _, t, _ in cells[:n]] or [4])
    return "\n".join(f"{names[t]:>{width}} -> {names[p]}: {count} ({count / max(totals[t], 1):.0%} of {names[t]})"
                     for count, t, p in cells[:n]) or "none"


def summary(report: Report) -> str:
    """The seed's closing block; at more than 20 classes the parts that fit a screen, the files holding the rest."""
    head = [f"a shortened run ({report.sample}): the figures describe those batches, not the model", ""] \
        if report.sample else []
    head += [
        f"training error rate: {report.pct('train_eval/err')}   (training set, evaluation mode)",
        f"test error rate:     {report.pct('test/err')}   (test accuracy {report.pct('test/acc')}, "
        f"{report.images} images)",
    ]
    val = report.history.get("val/acc") or {}
    if val:  # the last epoch's and the best: a search ranks a trial by its best
        best = max(val, key=lambda e: (val[e], -e))
        head.append(f"validation accuracy: {100 * val[max(val)]:.2f}% after the last epoch, best {100 * val[best]:.2f}%"
                    f" (epoch {best + 1})")
    head.append("")
    if len(report.class_names) <= FULL_UP_TO:
        body = ["confusion matrix (rows: true, columns: predicted)",
                format_confusion(report.confusion, report.class_names), "", "classification report",
                report.per_class_text]
    else:
        macro = report.per_class.get("macro avg", {})
        body = [f"{len(report.class_names)} classes: macro precision {macro.get('precision', 0):.1%}, recall "
                f"{macro.get('recall', 0):.1%}, F1 {macro.get('f1-score', 0):.1%}",
                "(the whole matrix and report: confusion_matrix.csv and .png, classification_report.txt)", "",
                "lowest recall", weakest(report), "", "largest confusions (true -> predicted)", confusions(report), ""]
    return "\n".join([*head, *body]) + (f"\nrun directory: {report.run_dir}\n" if report.run_dir else "")
