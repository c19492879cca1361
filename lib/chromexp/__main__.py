"""``python -m chromexp`` = the ``chromexp`` console script."""

from .cli import main

raise SystemExit(main())
