"""``python -m capstone``: see `capstone.frontends.cli`."""

import sys

from capstone.frontends.cli import main

sys.exit(main())
