"""Allow ``python -m scmatch``."""

import sys

from ._cli import main

sys.exit(main())
