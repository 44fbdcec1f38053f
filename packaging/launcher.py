"""Entry point of the standalone app: the same `studio` command line (no arguments: the window),
plus `--self-test OUT_DIR` (packaging/selftest.py: the smoke test's job through the child process)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # First, before anything else: the window's job worker is a forkserver child (spawn on macOS and
    # Windows), and the forkserver, its resource tracker and spawned sweep workers all start this same
    # executable with their own arguments; PyInstaller's freeze_support recognises those and runs them.
    multiprocessing.freeze_support()
    if sys.argv[1:2] == ["--self-test"]:
        import selftest

        sys.exit(selftest.main(sys.argv[2:]))
    from studio.cli.main import main

    sys.exit(main())
