"""Vision: the Vision Transformer, its image data sets and the chapter's experiments."""
from .data import DatasetMissing, ImageData, load_cifar10, load_dataset, load_digits_split, random_flip, random_shift
from .experiments import patch_size_experiment, position_ablation, train_and_evaluate
from .vit import PatchEmbedding, ViT, embed_patches, patchify, unpatchify

__all__ = ["DatasetMissing", "ImageData", "PatchEmbedding", "ViT", "embed_patches", "load_cifar10", "load_dataset",
           "load_digits_split", "patch_size_experiment", "patchify", "position_ablation", "random_flip",
           "random_shift", "train_and_evaluate", "unpatchify"]
