"""The build: a recipe (`recipe.py`) runs the stages of `lidr_data.stages` into a run folder (`run_folder.py`),
resuming and fingerprinting them (`pipeline.py`), and a finished run folder becomes a dataset version
(`materialize.py`, through `lidr_data.dataset`)."""
