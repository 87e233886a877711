"""The package's version: on the ground floor, so that any layer (a manifest, an audit record) can name it."""

__version__ = "0.1.0"
