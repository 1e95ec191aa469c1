"""A CLI run that SIGKILLs itself at a chosen step: ``python -c SCRIPT POINT NTH -- ARGS…``
runs ``byob ARGS…`` with the step POINT names patched to kill the process the NTH time it is
reached (the code under test is not changed)."""

from __future__ import annotations

import textwrap

_BEFORE = """
import os, signal, sys
point, nth = sys.argv[1], int(sys.argv[2])
seen = {"n": 0}

def die_at(owner, name, after):
    '''Kill the process the nth time owner.name is called: before or after the real call.'''
    real = getattr(owner, name)
    def wrapped(*args, **kwargs):
        seen["n"] += 1
        if not after and seen["n"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if after and seen["n"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(owner, name, wrapped)
"""

_AFTER = """
sys.argv = ["byob"] + sys.argv[4:]
from byob.cli.main import run
run()
"""


def killer_script(points: str) -> str:
    """The script, with ``points`` choosing the step from ``point`` (``die_at`` and ``seen``
    are there to use)."""
    return _BEFORE + textwrap.dedent(points) + _AFTER
