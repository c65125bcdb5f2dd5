"""``python -m sonotype`` is the ``sonotype`` command."""

import sys

from .cli import main

sys.exit(main())
