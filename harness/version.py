"""The harness's version: recorded in every run folder, so it sits under everything."""

__version__ = "0.1.0"
