"""``python -m curator`` runs the ``dreamcurate`` CLI."""

import sys

from curator.cli import main

sys.exit(main())
