"""`python -m normspec` runs the command line."""

import sys

from normspec.runner.cli import main

sys.exit(main())
