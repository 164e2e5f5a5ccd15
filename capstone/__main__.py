"""``python -m capstone``: see `capstone.cli`."""

import sys

from capstone.cli import main

sys.exit(main())
