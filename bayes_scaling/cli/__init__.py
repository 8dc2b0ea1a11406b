"""The ``bayes-scaling`` command: a thin layer over the library (no logic of its own).

The heavy libraries (PyMC, ArviZ, pandas) are imported inside the commands, so ``--help`` answers at once.
Errors end in one line in the command line's words and exit code 2; an interrupt ends in one line and exit
code 130, leaving every earlier output as it was (files are written whole or not at all).
"""

from __future__ import annotations

import sys
import warnings

from .. import interrupts
from .commands import DEMO_PORIAN_FAMILIES
from .messages import _MESSAGES, _in_cli_words, _progress
from .parser import build_parser

#: what other code (and the tests) read of the command line
__all__ = ["DEMO_PORIAN_FAMILIES", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    interrupts.install()
    _progress(getattr(args, "quiet", False))
    warnings.simplefilter("always")  # said once each by _MESSAGES, whatever the place that raised them
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    warnings.showwarning = _MESSAGES.showwarning
    _MESSAGES.seen.clear()
    from ..errors import BayesScalingError

    try:
        code = args.func(args)
        interrupts.check()  # pressed while the last step ran, its interrupt swallowed: say so, exit 130
        return code
    except KeyboardInterrupt:
        print("interrupted: stopped before finishing; files written earlier are as they were", file=sys.stderr)
        return 130
    except (BayesScalingError, FileNotFoundError, ValueError, PermissionError, IsADirectoryError) as exc:
        print(f"error: {_in_cli_words(str(exc))}", file=sys.stderr)
        return 2
