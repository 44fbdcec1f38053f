"""Entry point of the standalone app: the same `studio` command line (no arguments: the window)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # sensitivity --workers spawns processes from the frozen binary
    from studio.cli.main import main

    sys.exit(main())
