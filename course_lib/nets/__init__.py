"""Networks and action distributions shared by the agents."""
from .actor_critic import ActorCritic
from .conv import ConvDecoder, ConvEncoder
from .distributions import Categorical, DiagGaussian
from .mlp import EnsembleMLP, layer_init, mlp
from .resnet import ResidualBlock, conv_stem, residual_tower

__all__ = ["ActorCritic", "Categorical", "ConvDecoder", "ConvEncoder", "DiagGaussian", "EnsembleMLP", "ResidualBlock", "conv_stem", "layer_init", "mlp",
           "residual_tower"]
