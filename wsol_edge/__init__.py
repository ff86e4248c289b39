"""wsol_edge: weakly supervised object localization from training to the edge."""
__version__ = "0.1.0"
