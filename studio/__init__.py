"""Compression Studio: inspect, compress and export neural networks locally."""

__version__ = "0.1.0"
