"""Layer lists: their specs and checks (`spec`), files (`io`) and the network built from them (`build`)."""

from cnnlab.layers.build import Network, build_network
from cnnlab.layers.io import load_layers
from cnnlab.layers.scale import resize
from cnnlab.layers.spec import LAYER_FIELDS, LayerSpec, parse_layers

__all__ = ["LAYER_FIELDS", "LayerSpec", "Network", "build_network", "load_layers", "parse_layers", "resize"]
