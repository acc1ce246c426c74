"""`python -m tests.bench` (`make bench`)."""

import sys

from tests.bench.runner import main

sys.exit(main())
