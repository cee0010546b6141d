"""``python -m edgerep ...``: the same command line as the ``edgerep`` script."""

import sys

from edgerep.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
