"""Bundled sample models, each a real trained network that loads with no network access."""
