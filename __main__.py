"""``python -m trendgym ...`` runs the ``trendgym`` console command (train, evaluate, calibrate)."""

import sys

from trendgym.train.cli import main

# the guard matters: evaluation workers import the main module again (spawn), and without it
# each would rerun the command; the evaluation then refuses to start them and runs in-process
if __name__ == "__main__":
    sys.exit(main())
