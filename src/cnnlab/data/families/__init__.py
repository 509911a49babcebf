"""One module per data set family, each declaring its options beside its reader and registering itself
(`cnnlab.data.family`). Heavy imports (torch, scikit-learn) stay inside the readers: these modules are imported to
check a config."""
