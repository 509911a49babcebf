"""Layer lists: their vocabulary and checks (`spec`, one record per type in `types/`), files (`io`), sizes (`scale`)
and the network built from them (`build`). The network builder (torch) is imported when first used, so that
checking a list stays light."""

from cnnlab.layers.io import load_layers
from cnnlab.layers.scale import resize
from cnnlab.layers.spec import LayerSpec, layer_types, parse_layers

__all__ = ["LayerSpec", "Network", "build_network", "layer_types", "load_layers", "parse_layers", "resize"]


def __getattr__(name: str):
    if name in ("Network", "build_network"):
        from cnnlab.layers import build

        return getattr(build, name)
    raise AttributeError(f"module 'cnnlab.layers' has no attribute {name!r}")
