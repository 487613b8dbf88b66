"""``python -m sigbpf``: the same as the ``sigbpf`` command."""

import sys

from sigbpf.cli.main import main

sys.exit(main())
