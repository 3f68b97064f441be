"""Networks and action distributions shared by the agents."""
from .distributions import Categorical, DiagGaussian
from .mlp import EnsembleMLP, layer_init, mlp

__all__ = ["Categorical", "DiagGaussian", "EnsembleMLP", "layer_init", "mlp"]
