"""The package version (its own module so that the runtime can read it without importing ``jaxrl``)."""

__version__ = "0.1.0"
