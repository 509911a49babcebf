"""How a run that ends without its results says why, in its own folder; light (no torch, no Lightning), so that a
refused command is refused in a second."""

import json
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig


def log_to_file(text: str) -> None:
    """Into the run's train.log only (Hydra's file handler): the console has had its own line."""
    record = logging.LogRecord("cnnlab", logging.ERROR, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def record_stop(message: str, status: str = "failed") -> None:
    """A run that ends without its results says why: in its train.log, and in a results.json that says `status`
    (never over one a finished run wrote)."""
    log_to_file(message)
    if not HydraConfig.initialized() or HydraConfig.get().job.name == "search":  # a study's folder keeps its own
        return
    out = Path(HydraConfig.get().runtime.output_dir)
    if out.is_dir() and not (out / "results.json").exists():
        (out / "results.json").write_text(json.dumps({"status": status, "error": message}, indent=2) + "\n")
