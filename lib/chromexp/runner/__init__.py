"""Running the notebooks: the ``chromexp`` command, papermill execution, JupyterLab, the study's size.

* :mod:`chromexp.runner.cli` — the ``chromexp`` command (``run``, ``batch``, ``list``, ``download``, ``plan``, ``params``).
* :mod:`chromexp.runner.notebooks` — find, execute and track the notebooks (``notebooks/NN_name.py``).
* :mod:`chromexp.runner.lab` — JupyterLab on the notebooks (``make lab``).
* :mod:`chromexp.runner.scale` — the model grid and its device-hours from measured throughput.

May import the base modules and :mod:`chromexp.data`; it runs notebooks, it does not import the
science (``tests/test_architecture.py``). ``python -m chromexp`` runs :func:`chromexp.runner.cli.main`.
This package imports nothing itself: import the module you need.
"""
