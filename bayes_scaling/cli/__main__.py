"""``python -m bayes_scaling.cli``: the ``bayes-scaling`` command."""

from . import main

raise SystemExit(main())
