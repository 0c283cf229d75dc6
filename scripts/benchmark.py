#!/usr/bin/env python3
"""Moved to components/preview/benchmark.py: run ``python -m components benchmark``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for `components`
from components.preview.benchmark import main  # noqa: E402

print("scripts/benchmark.py moved: run python -m components benchmark", file=sys.stderr)
sys.exit(main())
