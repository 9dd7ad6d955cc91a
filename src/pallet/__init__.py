"""pallet: a Linux container stack in Python."""

__version__ = "0.1.0"
