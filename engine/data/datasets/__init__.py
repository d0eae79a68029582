"""The registered datasets, one file each; `engine.data` imports every module here."""
