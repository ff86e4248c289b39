"""wsol_edge: weakly supervised object localization from training to the edge.

``from wsol_edge import Localizer`` is resolved lazily so that ``import wsol_edge`` stays light
(and never imports torch).
"""
__version__ = "0.1.0"


def __getattr__(name):
    if name in ("Localizer", "Localization"):
        from .runtime import localizer

        return getattr(localizer, name)
    raise AttributeError(f"module 'wsol_edge' has no attribute {name!r}")


__all__ = ["Localizer", "Localization", "__version__"]
