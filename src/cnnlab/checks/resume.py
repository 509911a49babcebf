"""`ckpt_path=`: a checkpoint to continue from must be cnnlab's, of the same layer list and data config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.checks.arch import Arch, same_layers
from cnnlab.checks.fields import OptionError


def check_resume(ckpt_path: Path, arch: Arch, data_config: dict[str, Any]) -> int:
    """The checkpoint's epoch, once it is known to continue this run's list on this run's data."""
    from cnnlab.inference import read_checkpoint

    checkpoint = read_checkpoint(ckpt_path)
    saved = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    saved_data = (saved.get("data_info") or {}).get("config")
    if not same_layers(saved.get("layers") or [], arch.raw) or (saved_data is not None and saved_data != data_config):
        overrides = Path(ckpt_path).resolve().parent.parent / ".hydra" / "overrides.yaml"
        hint = f" (that run's overrides: {overrides.read_text().strip()})" if overrides.is_file() else ""
        raise OptionError(f"{ckpt_path} was trained with a different arch or data config than this command's; "
                          f"resume with the same arch=... and data=... options as the original run{hint}.")
    return int(checkpoint.get("epoch", -1))
