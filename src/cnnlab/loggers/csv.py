"""logger=csv: metrics.csv in the run folder (Lightning's CSVLogger), the record every run keeps."""

from cnnlab.loggers import Adapter


class CSV(Adapter):
    target = "pytorch_lightning.loggers.CSVLogger"
