"""cnnlab: declare a CNN as a layer list in config; train, measure and search it."""

__version__ = "0.1.0"
