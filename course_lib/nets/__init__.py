"""Networks and action distributions shared by the agents."""
from .distributions import Categorical, DiagGaussian
from .mlp import layer_init, mlp

__all__ = ["Categorical", "DiagGaussian", "layer_init", "mlp"]
