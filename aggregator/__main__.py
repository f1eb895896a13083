from __future__ import annotations

import sys

from aggregator.cli import main

sys.exit(main())
