"""The restricted unpickler, kept importable here; it lives in :mod:`mammoscreen.core.safepickle`."""

from ..core.safepickle import MalformedPickleError, UnsafePickleError, load_pickle, safe_load, safe_loads

__all__ = ["MalformedPickleError", "UnsafePickleError", "load_pickle", "safe_load", "safe_loads"]
