"""`python -m rnnkit` runs the `rnnkit` command (and `torchrun -m rnnkit train TASK ...`)."""

import sys

from rnnkit.cli import main

sys.exit(main())
