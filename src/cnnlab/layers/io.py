"""Read a layer list from a file the user points to: YAML, JSON, or the seed's Python-literal list."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import yaml

from cnnlab.errors import ArchError


def _parse(text: str, path: Path) -> Any:
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_error:
        # The seed printed its list as Python ({'type':'C', 'kernel_size':(3,3)}); literal_eval reads
        # that form verbatim and cannot run code.
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ArchError(f"{path}: not valid JSON ({json_error}) nor a Python literal list; "
                            "write the layer list as JSON, YAML or the seed's [{'type': 'C', ...}] form.") from None


def load_layers(path: str | Path) -> list[Any]:
    """The raw layer list in `path` (a list, or a mapping with a `layers` key); checking is parse_layers'."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ArchError(f"arch file {path} does not exist; give an existing .yaml, .yml or .json file "
                        "(paths are relative to the directory you started from).")
    try:
        data = _parse(path.read_text(), path)
    except yaml.YAMLError as err:
        raise ArchError(f"{path}: not valid YAML: {err}") from None
    if isinstance(data, dict) and "layers" in data:
        data = data["layers"]
    if not isinstance(data, list):
        raise ArchError(f"{path}: expected a list of layers or a mapping with a 'layers' list, "
                        f"got {type(data).__name__}.")
    return data
