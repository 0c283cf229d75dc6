"""``python -m components.render``: the offline render's entry point before ``python -m components render``.

Kept because workflows copied from this repository run it; it says so and runs the same command.
"""

import sys

if __name__ == "__main__":
    from components.preview.cli import main

    print("notice: 'python -m components.render' is now 'python -m components render'", file=sys.stderr)
    sys.exit(main())
