"""`python -m tailor.train SPEC --job-id ID`."""

import sys

from tailor.train.entrypoint import main

sys.exit(main())
