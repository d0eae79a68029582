"""Where a run's records go besides the database: observers of the round loop (the models a run
keeps, an MLflow server). #18 moves storage and the run manager here too."""
