"""``python -m chromexp`` = the ``chromexp`` console script."""

from .runner.cli import main

raise SystemExit(main())
