"""The headless front end: argument parsing, terminal rendering and progress."""
