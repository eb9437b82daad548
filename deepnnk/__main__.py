"""``python -m deepnnk``: the command line of :mod:`deepnnk.cli`."""

import sys

from deepnnk.cli import main

if __name__ == "__main__":
    sys.exit(main())
