"""The deployment runtime: sources -> Localizer (backend + CPU postprocess) -> sinks, threaded."""
from .localizer import Localization, Localizer

__all__ = ["Localization", "Localizer"]
