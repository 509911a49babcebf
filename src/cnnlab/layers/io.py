"""Read a layer list from a file the user points to: YAML, JSON, or the seed's Python-literal list."""

import ast
import json
from pathlib import Path
from typing import Any

import yaml

from cnnlab.checks.errors import ArchError

FORMATS = ("YAML (.yaml, .yml)", "JSON", "the seed's Python list [{'type': 'C', ...}, ...] or ARCH = [...]")


def _python_literal(text: str) -> Any:
    """The seed's Python form: a literal list, or one assignment `NAME = <literal>` as its README printed it.
    Parsed with `ast` and read with `literal_eval`: nothing in the file is ever run."""
    tree = ast.parse(text, mode="exec")
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
        return ast.literal_eval(tree.body[0].value)
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Assign):
        targets = tree.body[0].targets
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            return ast.literal_eval(tree.body[0].value)
    raise ValueError("not a single literal or NAME = literal")


def _parse(text: str, path: Path) -> Any:
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_error:
        # The seed printed its list as Python (ARCH = [{'type':'C', 'kernel_size':(3,3)}]); read verbatim
        try:
            return _python_literal(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ArchError(f"{path}: not valid JSON ({json_error}) nor a Python literal list; write the layer "
                            f"list as {', '.join(FORMATS[:2])} or {FORMATS[2]}.") from None


def load_layers(path: str | Path) -> list[Any]:
    """The raw layer list in `path` (a list, or a mapping with a `layers` key); checking is parse_layers'."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ArchError(f"arch file {path} does not exist; give an existing .yaml, .yml or .json file "
                        "(paths are relative to the directory you started from).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ArchError(f"{path} is not a text file (not UTF-8: an image or other binary file?); an arch file is "
                        f"{', '.join(FORMATS[:2])} or {FORMATS[2]}.") from None
    try:
        data = _parse(text, path)
    except yaml.YAMLError as err:
        raise ArchError(f"{path}: not valid YAML: {err}") from None
    except RecursionError:  # json and yaml recurse once per level of nesting
        raise ArchError(f"{path}: nested too deeply to be a layer list (blocks inside blocks, thousands deep); a "
                        "layer list nests R and REPEAT blocks a few levels at most.") from None
    if isinstance(data, dict) and "layers" in data:
        data = data["layers"]
    if not isinstance(data, list):
        raise ArchError(f"{path}: expected a list of layers or a mapping with a 'layers' list, "
                        f"got {type(data).__name__}.")
    return data
