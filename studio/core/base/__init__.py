"""Ground types every part of the core uses: errors, events, cancellation, units, atomic files."""
