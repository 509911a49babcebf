"""Data sets: families (what a data set is, its options and how its files are read: `families/`), sources (images in
memory or streamed) and the one LightningDataModule over them. Data configs name a family from the registry, never a
`_target_`, so that neither a config nor a checkpoint can make cnnlab import code."""

from pathlib import Path

from cnnlab.data.options import DataOptions


def make_source(options: DataOptions | dict, data_dir: str | Path):
    """Where the images come from; for a folder, its structure is scanned (nothing is decoded yet). `options`: checked
    data options, or a plain data config (checked here)."""
    from cnnlab.data.family import Family, read_data

    if not isinstance(options, DataOptions):  # a config node or a plain mapping
        from omegaconf import DictConfig, OmegaConf

        options = read_data(OmegaConf.to_container(options) if isinstance(options, DictConfig) else dict(options))
    return Family.kinds()[options.family].source(options, data_dir)


def make_datamodule(options: DataOptions | dict, data_dir: str | Path):
    """The run's LightningDataModule; reads nothing yet but a folder's structure and a shards folder's description."""
    from cnnlab.data.module import ImageData

    source = make_source(options, data_dir)
    return ImageData(source, source.options)
