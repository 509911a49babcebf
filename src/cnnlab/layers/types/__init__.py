"""One module per layer type, each registering its `LayerType` record (fields, builder, description, how it scales,
what Muon takes): a new type is a new module here and its row in the README's table. Builders import torch when
they are called, so that checking a layer list (which imports these modules) stays free of torch."""
