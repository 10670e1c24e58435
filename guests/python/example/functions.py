"""The `functions` interface's resource, where componentize-py looks for it."""

import app  # noqa: F401  (declares the functions)
from sse_guest import Invocation

__all__ = ["Invocation"]
