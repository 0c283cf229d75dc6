"""``python -m components.fleet``: the fleet status's entry point before ``python -m components fleet``.

Kept because workflows copied from this repository run it; it says so and runs the same command.
"""

import sys

from components.fleet.cli import main

print("notice: 'python -m components.fleet' is now 'python -m components fleet'", file=sys.stderr)
sys.exit(main())
