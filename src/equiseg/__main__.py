"""`python -m equiseg audit ...` is `equiseg audit ...`."""

import sys

from equiseg.cli import main

sys.exit(main())
