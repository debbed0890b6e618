"""Vignette: a reading companion that answers questions about a novel with quotes and illustrates its scenes.

This package holds what every stage shares: settings, the user-facing error type, the dataclasses that
flow between stages (book -> passages -> candidates -> answer -> scene prompt -> image) and the offline
preparation that every entry point runs first.
"""

__version__ = "0.1.0"
