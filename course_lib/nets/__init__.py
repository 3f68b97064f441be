"""Networks, action distributions, value transforms and categorical heads shared by the agents."""
from .distributions import Categorical, DiagGaussian
from .mlp import EnsembleMLP, layer_init, mlp
from .straight_through import OneHotCategorical
from .transforms import (from_support, from_two_hot, scale_value, symexp, symexp_bins, symlog, to_support, two_hot,
                         unscale_value)

__all__ = ["Categorical", "DiagGaussian", "EnsembleMLP", "OneHotCategorical", "from_support", "from_two_hot",
           "layer_init", "mlp", "scale_value", "symexp", "symexp_bins", "symlog", "to_support", "two_hot",
           "unscale_value"]
