"""Models out of a run: the final (and best-validation) models every run keeps, their model cards,
downloads, ONNX export, and predictions on new data (:mod:`engine.artifacts.keep`,
:mod:`engine.artifacts.bundle`, :mod:`engine.artifacts.predict`, :mod:`engine.artifacts.onnx_export`)."""
