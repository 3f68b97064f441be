"""Vision: the Vision Transformer and its image data sets."""
from .data import DatasetMissing, ImageData, load_cifar10, load_dataset, load_digits_split, random_flip, random_shift
from .vit import PatchEmbedding, ViT, embed_patches, patchify, unpatchify

__all__ = ["DatasetMissing", "ImageData", "PatchEmbedding", "ViT", "embed_patches", "load_cifar10", "load_dataset",
           "load_digits_split", "patchify", "random_flip", "random_shift", "unpatchify"]
