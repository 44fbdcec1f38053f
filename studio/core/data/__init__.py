"""Bundled, offline datasets (the samples' own data)."""
