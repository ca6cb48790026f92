"""``python -m wiz_jupyter``: the ``wiz`` command line."""

import sys

from .cli import main

sys.exit(main())
