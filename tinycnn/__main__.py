"""``python -m tinycnn ...`` is the ``tinycnn`` command."""

import sys

from .cli import main

sys.exit(main())
