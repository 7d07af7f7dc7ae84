"""``python -m prefrl``: the same as the ``prefrl`` command."""

import sys

from .cli import main

sys.exit(main())
