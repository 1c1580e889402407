"""A tiny HTTP service: answers with its name, version and health."""

__version__ = "0.1.0"
