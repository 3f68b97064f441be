"""Networks, action distributions, value transforms and categorical heads shared by the agents."""
from .actor_critic import ActorCritic
from .conv import ConvDecoder, ConvEncoder
from .distributions import Categorical, DiagGaussian
from .mlp import EnsembleMLP, layer_init, mlp
from .resnet import ResidualBlock, conv_stem, residual_tower
from .straight_through import OneHotCategorical
from .transformer import (GPT, KVCache, Transformer, TransformerConfig, TransformerOutput, block_causal_mask,
                          causal_mask, padding_mask, scaled_dot_product_attention)
from .transforms import (from_support, from_two_hot, scale_value, symexp, symexp_bins, symlog, to_support, two_hot,
                         unscale_value)

__all__ = ["GPT", "KVCache", "Transformer", "TransformerConfig", "TransformerOutput", "block_causal_mask",
           "causal_mask", "padding_mask", "scaled_dot_product_attention", "ActorCritic", "Categorical", "ConvDecoder", "ConvEncoder", "DiagGaussian", "EnsembleMLP",
           "OneHotCategorical", "ResidualBlock", "conv_stem", "from_support", "from_two_hot", "layer_init", "mlp",
           "residual_tower", "scale_value", "symexp", "symexp_bins", "symlog", "to_support", "two_hot",
           "unscale_value"]
