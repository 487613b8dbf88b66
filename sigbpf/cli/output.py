"""Output helpers shared by every command: JSON on stdout.

(Reading inputs and writing output files atomically is library code:
:mod:`sigbpf.fileio`.)
"""

from __future__ import annotations

import sys
from typing import Any


def emit_json(value: Any) -> None:
    """Print *value* as indented JSON on stdout."""
    import json  # on use: most runs print text

    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
