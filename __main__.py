"""``python -m trendgym ...`` runs the ``trendgym`` console command (train, evaluate, calibrate)."""

import sys

from trendgym.train.cli import main

sys.exit(main())
