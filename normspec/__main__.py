"""`python -m normspec` runs the command line."""

import sys

from normspec.cli import main

sys.exit(main())
