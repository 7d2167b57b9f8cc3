#!/usr/bin/env python
"""avfusion-bench command-line entry point (see ``--help``)."""
from benchmark.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
