"""Qt window of the studio: every module here is a thin adapter over `studio.core`."""
