"""The ``probe`` command line: parses arguments, calls the library, prints."""

from .main import main

__all__ = ["main"]
