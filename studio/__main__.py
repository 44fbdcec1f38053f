"""`python -m studio` runs the same entry point as the `studio` console script."""

import sys

try:
    from studio.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while starting: the same one line as later
    print("studio: cancelled", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
