"""Typed results and the rows every front end shows, computed once here (the CLI prints them,
the window's table models read them)."""
