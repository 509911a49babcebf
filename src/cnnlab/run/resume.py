"""`ckpt_path=`: a checkpoint to continue from must be cnnlab's, of the same layer list, data config and optimizer,
with epochs left to train."""

from pathlib import Path
from typing import Any

from cnnlab.checks.fields import OptionError
from cnnlab.layers.arch import Arch, same_layers


def check_resume(ckpt_path: Path, arch: Arch, data_config: dict[str, Any], optimizer, max_epochs: int) -> int:
    """The checkpoint's epoch, once it is known to continue this run's list on this run's data with the same
    optimizer, and to have epochs left to train."""
    from cnnlab.inference import read_checkpoint
    from cnnlab.optim import optimizer_name, wants_matrices

    checkpoint = read_checkpoint(ckpt_path)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    saved_data = (hparams.get("data_info") or {}).get("config")
    if not same_layers(hparams.get("layers") or [], arch.raw) or (saved_data is not None and saved_data != data_config):
        overrides = Path(ckpt_path).resolve().parent.parent / ".hydra" / "overrides.yaml"
        hint = f" (that run's overrides: {overrides.read_text().strip()})" if overrides.is_file() else ""
        raise OptionError(f"{ckpt_path} was trained with a different arch or data config than this command's; "
                          f"resume with the same arch=... and data=... options as the original run{hint}.")
    now, saved = optimizer_name(optimizer), checkpoint.get("optimizer")
    if saved is None:  # written before cnnlab recorded it: Muon's state is two optimizers' (Combined)
        combined = "optimizers" in (checkpoint.get("optimizer_states") or [{}])[0]
        saved = now if combined == wants_matrices(optimizer) else "optim=muon" if combined else "another optimizer"
    if saved != now:
        raise OptionError(f"{ckpt_path} was trained with the optimizer {saved}, this command's is {now}; "
                          "its optimizer state only continues the same one: resume with the original run's optim=... "
                          "(or start a new run from scratch).")
    done = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {}).get("processed")
    if done is not None and max_epochs > 0 and done >= max_epochs:
        raise OptionError(f"{ckpt_path} has finished its {done} epochs, and trainer.max_epochs={max_epochs} leaves "
                          "none to train; raise trainer.max_epochs to train it longer, or test it with python "
                          f"src/eval.py ckpt_path={ckpt_path}.")
    return int(checkpoint.get("epoch", -1))
