"""The one error the demo stops with: ``ivz demo`` prints it and exits 1."""

from __future__ import annotations


class DemoError(RuntimeError):
    """A step of the demo was refused by the product; the message says which and why."""
