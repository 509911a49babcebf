"""Compare finished runs: `python src/compare.py RUN_DIR... [--metric test/acc] [--out FOLDER]` (see README.md)."""

import cnnlab  # noqa: F401  (first: as every entry point)

# isort: split
import argparse
import sys
import time
from pathlib import Path

from cnnlab.checks.errors import CnnlabError
from cnnlab.compose import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One table of finished runs (any day, sweep or not), best first.")
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (each with its results.json)")
    parser.add_argument("--metric", default="test/acc", help="the results.json key to sort by (default test/acc)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where summary.csv and summary.png go (default outputs/compare/<date>_<time>)")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "outputs" / "compare" / time.strftime("%Y-%m-%d_%H-%M-%S")
    from cnnlab.compare import compare

    try:
        compare(args.runs, args.metric, out)
    except CnnlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
