"""Where a run's records live: the SQLite store (:mod:`.storage`), the run manager that trains runs
in the background (:mod:`.runs`, with :mod:`.worker` for a run in a process of its own and
:mod:`.eta`), and the observers of the round loop (:mod:`.observers`: the models a run keeps, an
MLflow server, :mod:`.mlflow_sink`)."""
