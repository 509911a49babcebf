"""The report's files in the run directory: confusion_matrix.csv and .png, classification_report.txt and .json,
curves.png (when there are training epochs to draw), summary.txt."""

import csv
import json
from pathlib import Path

from cnnlab.report import figures
from cnnlab.report.console import summary
from cnnlab.report.value import Report

SUMMARY = "summary.txt"


def write_files(report: Report, out: Path, images: dict[str, bytes]) -> list[Path]:
    """The files, from the value and its figures (`images`: name -> PNG bytes); returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "confusion_matrix.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *report.class_names])
        for name, row in zip(report.class_names, report.confusion):
            writer.writerow([name, *row])
    (out / "classification_report.txt").write_text(report.per_class_text)
    (out / "classification_report.json").write_text(json.dumps(report.per_class, indent=2))
    for name, png in images.items():
        (out / f"{name}.png").write_bytes(png)
    (out / SUMMARY).write_text(summary(report))
    names = ["confusion_matrix.csv", "classification_report.txt", "classification_report.json", SUMMARY,
             *(f"{n}.png" for n in images)]
    return [out / n for n in names]


def draw(report: Report) -> dict[str, bytes]:
    """The figures every sink shares, drawn once."""
    images = {"confusion_matrix": figures.confusion_png(report)}
    if figures.has_curves(report):
        images["curves"] = figures.curves_png(report)
    return images
