r"""Training the Vision Transformer (:class:`~course_lib.vision.ViT`) on images, and its two baselines.

``python -m course_lib train vit --dataset digits --seed 0 --out DIR`` trains the ViT on
scikit-learn's 8×8 digits (offline) and scores it on a fixed stratified test split
(:func:`~course_lib.vision.data.load_digits_split`). The loop, in plain sight in :func:`train`::

    for each epoch:
        for each minibatch (x, y) of a random permutation of the training images:
            x <- random shift by up to max_shift pixels (and a mirror, if flip)
            loss = cross-entropy(model(x), y) with label smoothing
            one AdamW step; learning rate: linear warm-up, then cosine decay to 0
        log loss, running training accuracy and learning rate; every eval_every epochs the test accuracy

``--model cnn`` trains a small convolutional network in the same loop and ``--model svc`` fits
an RBF support vector machine (scikit-learn) on the same split: the baselines the ViT is
measured against in ``python -m course_lib bench vit``. The summary (``summary.json``)
reports ``test_accuracy``, the training seconds and the model's size.

Presets: the defaults (also named ``digits``) are the digits configuration: 4×4 patches (N = 4
tokens and [CLS]), D = 64, L = 4, 80 epochs; 98.9 % mean test accuracy over seeds 0-4 (98.4 % the
lowest) in about 40 s each on one thread of a shared 2-core Xeon, where the CNN baseline gets
99.7 % in 18 s and the SVC 99.1 % in 0.02 s. ``quick`` is the notebooks' short run (a smaller
ViT, 10 epochs, about 2 s); ``cifar10`` is the GPU run on CIFAR-10 (see :data:`CIFAR10_PRESET`).
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..core import Counters, Run, Stopwatch, TrainConfig, option
from ..core.config import ConfigError
from ..core.fit import warmup_cosine, weight_decay_groups
from ..nets.transformer import TransformerConfig
from ..vision.data import DATASETS, ImageData, load_dataset, random_flip, random_shift
from ..vision.vit import ViT

__all__ = ["ViTConfig", "SmallCNN", "build_networks", "train", "evaluate_accuracy", "warmup_cosine",
           "BENCHMARKS", "IMAGE_SHAPES", "CIFAR10_PRESET"]

# What each data set's images look like (known before loading, so configs are checked at once).
IMAGE_SHAPES = {"digits": (1, 8, 8), "cifar10": (3, 32, 32)}
NUM_CLASSES = {"digits": 10, "cifar10": 10}
MODELS = ("vit", "cnn", "svc")


@dataclass
class ViTConfig(TrainConfig):
    """The ViT (or a baseline) and its training. The lecture's symbols: patch side P, width D,
    blocks L, heads H; N = HW/P² patch tokens plus [CLS]. Presets: ``digits`` (the defaults),
    ``quick`` (the notebooks' 2-second run) and ``cifar10`` (GPU; expect 80-85 %, see :data:`CIFAR10_PRESET`)."""

    dataset: str = option("digits", "images: scikit-learn's 8×8 digits (offline) or CIFAR-10 (32×32 colour)",
                          choices=DATASETS)
    data_dir: str = option("data", "folder holding cifar-10-batches-py (CIFAR-10 only)")
    download: bool = option(False, "download CIFAR-10 into data_dir when it is missing (needs a network)")
    model: str = option("vit", "vit, or a baseline: cnn (a small convolutional network, same training loop) or "
                               "svc (an RBF support vector machine)", choices=MODELS)
    patch: int = option(4, "patch side P (divides the image's height and width)", low=1)
    d_model: int = option(64, "token width D", low=1)
    n_heads: int = option(4, "attention heads H (d_model must divide by it)", low=1)
    n_layers: int = option(4, "transformer blocks L", low=1)
    d_ff: int = option(0, "hidden width of each block's MLP (0: 4 * d_model)", low=0)
    dropout: float = option(0.1, "dropout on the embedded tokens, attention weights and residual branches",
                            low=0.0, high=1.0, high_open=True)
    positions: str = option("learned", "position embedding: learned (a table of N+1 learnable vectors) or none "
                                       "(the ablation: the tokens become a set of patches)",
                            choices=("learned", "none"))
    pool: str = option("cls", "what the head reads: the [CLS] token or the mean of the patch tokens",
                       choices=("cls", "mean"))
    cnn_channels: int = option(32, "channels of the CNN baseline's first stage (the second has twice as many)",
                               low=1)
    svc_c: float = option(10.0, "the SVC baseline's C (inverse regularisation strength)", low=0.0, low_open=True)
    svc_gamma: float = option(0.0, "the SVC's RBF width γ in exp(-γ|x - x'|²) (0: scikit-learn's 'scale', "
                                   "1 / (features · variance))", low=0.0)
    epochs: int = option(80, "passes over the training images", low=1)
    batch_size: int = option(32, "images per gradient step", low=1)
    learning_rate: float = option(2e-3, "AdamW's peak step size", low=0.0, low_open=True)
    weight_decay: float = option(0.1, "AdamW's decoupled weight decay (not on biases, norms, [CLS] or positions)",
                                 low=0.0)
    warmup_epochs: float = option(2.0, "epochs of linear learning-rate warm-up before the cosine decay", low=0.0)
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy", low=0.0, high=1.0, high_open=True)
    max_shift: int = option(1, "augmentation: shift each training image by up to this many pixels (0: none)",
                            low=0)
    flip: bool = option(False, "augmentation: mirror training images left-right (CIFAR-10; never digits)")
    eval_every: int = option(10, "epochs between test-accuracy rows in metrics.jsonl (0: only at the end)", low=0)
    eval_batch_size: int = option(1000, "images per forward pass when scoring", low=1)
    checkpoint_every: int = option(10, "epochs between checkpoints (0: only at the end)", low=0)

    def validate(self) -> None:
        super().validate()
        C, H, W = IMAGE_SHAPES[self.dataset]
        if H % self.patch or W % self.patch:
            sides = [p for p in range(1, min(H, W) + 1) if H % p == 0 and W % p == 0]
            raise ConfigError(f"ViTConfig.patch = {self.patch} does not divide the {H}×{W} {self.dataset} images; "
                              f"accepted: {', '.join(map(str, sides))}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"ViTConfig.d_model = {self.d_model} must divide by n_heads = {self.n_heads}")
        if self.model == "svc" and self.dataset != "digits":
            raise ConfigError(f"the SVC baseline fits an RBF kernel over all training images (hours on "
                              f"{self.dataset}'s 50,000); accepted: --model svc with --dataset digits")
        if self.flip and self.dataset == "digits":
            raise ConfigError("ViTConfig.flip mirrors images, which turns digits into other shapes; accepted: "
                              "--flip false with --dataset digits")

    @property
    def transformer(self) -> TransformerConfig:
        """The stack's config (the ViT adds its positions itself: ``positions`` learned or none)."""
        return TransformerConfig(d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff,
                                 dropout=self.dropout, positions=self.positions)


CIFAR10_PRESET = {
    "dataset": "cifar10", "download": True, "patch": 4, "d_model": 384, "n_heads": 12, "n_layers": 7,
    "d_ff": 384, "dropout": 0.0, "epochs": 200, "batch_size": 128, "learning_rate": 1e-3,
    "weight_decay": 5e-5, "warmup_epochs": 5, "label_smoothing": 0.1, "max_shift": 4, "flip": True,
    "eval_every": 5, "eval_batch_size": 1000, "checkpoint_every": 5,
}
"""The ``cifar10`` preset, for a GPU: 64 tokens of 4×4 patches, D = 384, 7 blocks of 12 heads (about 6.3M
parameters, the size of the from-scratch ViT of omihub777/ViT-CIFAR), 200 epochs of AdamW with warm-up
and cosine decay, label smoothing, random crops (4-pixel shifts) and mirroring.

What to expect: that published model reaches about 91 % test accuracy in 200 epochs (2 h 14 min on a
V100), with AutoAugment as well, which this preset does not have (only crops and mirrors); other
from-scratch ViTs report 75-80 % at 180-200 epochs with weaker augmentation. Expect 80-85 % here,
and about 1-2 hours on one recent GPU. Not measured yet: the machines this library was tested on
cannot download CIFAR-10."""

ViTConfig.presets = {
    "digits": {},
    # The notebooks' short run: a smaller ViT, briefly and without regularisation (about 2 s on one CPU thread).
    "quick": {"d_model": 32, "n_layers": 2, "epochs": 10, "dropout": 0.0, "label_smoothing": 0.0, "max_shift": 0,
              "learning_rate": 3e-3, "eval_every": 0, "checkpoint_every": 0},
    "cifar10": CIFAR10_PRESET,
}

# What `python -m course_lib bench vit` runs: the ViT and its two baselines, on the same split.
BENCHMARKS = {"vit": (None, {}), "cnn": (None, {"model": "cnn"}), "svc": (None, {"model": "svc"})}


class SmallCNN(nn.Module):
    """The convolutional baseline: two stages of (3×3 conv, ReLU, 3×3 conv, ReLU, 2×2 max-pool), widths ``c``
    and ``2c``, then a linear head over the flattened map. ``[B, C, H, W] -> logits [B, classes]``
    (``H`` and ``W`` multiples of 4)."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, channels: int = 32):
        super().__init__()
        C, H, W = image_shape
        if H % 4 or W % 4:
            raise ValueError(f"SmallCNN halves the image twice; got {H}×{W}; accepted: sides that are multiples of 4")
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(C, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Linear(2 * c * (H // 4) * (W // 4), num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def build_networks(cfg: ViTConfig) -> dict[str, nn.Module]:
    """``{"net": ViT or SmallCNN}`` for ``cfg.model``; the SVC has no network (an empty dict)."""
    shape, classes = IMAGE_SHAPES[cfg.dataset], NUM_CLASSES[cfg.dataset]
    if cfg.model == "vit":
        return {"net": ViT(shape, classes, cfg.patch, cfg.transformer, pool=cfg.pool)}
    if cfg.model == "cnn":
        return {"net": SmallCNN(shape, classes, cfg.cnn_channels)}
    return {}


@torch.no_grad()
def evaluate_accuracy(net: nn.Module, data: ImageData, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = 1000) -> float:
    """The fraction of ``images`` (uint8 ``[M, C, H, W]``) whose most probable class is ``labels [M]``."""
    was_training = net.training
    net.eval()
    correct = 0
    for i in range(0, images.shape[0], batch_size):
        logits = net(data.normalize(images[i:i + batch_size]))
        correct += (logits.argmax(-1) == labels[i:i + batch_size]).sum().item()
    net.train(was_training)
    return correct / max(1, images.shape[0])


@dataclass
class ViTCounters(Counters):
    """``epoch``: passes done; ``step`` and ``updates``: gradient steps; ``images``: training images seen."""
    epoch: int = 0
    images: int = 0


class _FittedSVC:
    """The fitted scikit-learn estimator as a checkpointable object (pickled bytes in the checkpoint)."""

    def __init__(self) -> None:
        self.estimator = None

    def state_dict(self) -> dict[str, Any]:
        return {"pickle": None if self.estimator is None else pickle.dumps(self.estimator)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.estimator = None if state["pickle"] is None else pickle.loads(state["pickle"])


def train(config: ViTConfig | None = None, out: str | None = None, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True, callback: Callable[[Mapping[str, Any]], None] | None = None,
          keep_network: bool = False) -> dict[str, Any]:
    """Train ``config.model`` on ``config.dataset`` and score it on the test split; returns the summary.

    The summary has ``test_accuracy``, ``train_seconds`` (the training loop, summed over
    resumes; for the SVC its fit), ``wall_seconds``, ``epochs``, ``updates``, ``parameters``,
    ``images_per_second`` and the data set's sizes; with ``keep_network`` also ``net`` (the
    trained network, or the fitted SVC under ``svc``). ``out=None`` keeps everything in memory.
    """
    cfg = config if config is not None else ViTConfig()
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.download)       # a missing data set fails before any file
    n = data.train_images.shape[0]
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    # The loop counts gradient steps (the progress bar's unit); checkpoints fall on whole epochs.
    run = Run(out, "vit", cfg, resume=resume, overwrite=overwrite, progress=progress, callback=callback,
              checkpoint_every=cfg.checkpoint_every * steps_per_epoch)
    device = run.device
    data = data.to(device)
    counters = ViTCounters()
    clock = Stopwatch(counters, device)
    base = {"dataset": cfg.dataset, "model": cfg.model, "seed": cfg.seed, "device": str(device),
            "train_images": data.train_images.shape[0], "test_images": data.test_images.shape[0]}
    if cfg.model == "svc":
        return _train_svc(cfg, data, run, counters, clock, base, keep_network)

    net = build_networks(cfg)["net"].to(device)
    optimizer = torch.optim.AdamW(weight_decay_groups(net, cfg.weight_decay), lr=cfg.learning_rate)
    total, warmup = cfg.epochs * steps_per_epoch, round(cfg.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, warmup, total))
    run.restore(net=net, optimizer=optimizer, scheduler=scheduler, counters=counters)

    with run.loop(total, counters, f"{cfg.model} {cfg.dataset}"):
        while counters.epoch < cfg.epochs:
            net.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device)
            with clock("learning"):
                order = torch.randperm(n, device=device)
                for i in range(steps_per_epoch):
                    idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                    images, labels = data.train_images[idx], data.train_labels[idx]
                    images = random_shift(images, cfg.max_shift)        # uint8: the border is black (0)
                    if cfg.flip:
                        images = random_flip(images)
                    logits = net(data.normalize(images))
                    loss = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    loss_sum += loss.detach() * idx.numel()
                    correct += (logits.argmax(-1) == labels).sum()
            counters.epoch += 1
            counters.step += steps_per_epoch
            counters.updates += steps_per_epoch
            counters.images += n
            row = {"epoch": counters.epoch, "step": counters.step, "loss": loss_sum.item() / n,
                   "train_accuracy": correct.item() / n, "learning_rate": scheduler.get_last_lr()[0],
                   "wall_time": run.elapsed()}
            if cfg.eval_every and counters.epoch % cfg.eval_every == 0 and counters.epoch < cfg.epochs:
                with clock("evaluating"):
                    row["test_accuracy"] = evaluate_accuracy(net, data, data.test_images, data.test_labels,
                                                             cfg.eval_batch_size)
            postfix = {"loss": f"{row['loss']:.3f}", "acc": f"{row['train_accuracy']:.3f}"}
            run.end_iteration(counters.step, counters.step - steps_per_epoch, row, postfix=postfix)

    with clock("evaluating"):
        test_accuracy = evaluate_accuracy(net, data, data.test_images, data.test_labels, cfg.eval_batch_size)
    run.log({"epoch": counters.epoch, "step": counters.step, "test_accuracy": test_accuracy,
             "wall_time": run.elapsed()})
    run.save()
    summary = run.finish({
        **base, "test_accuracy": test_accuracy, "train_seconds": counters.time_learning,
        "eval_seconds": counters.time_evaluating, "wall_seconds": run.elapsed(), "epochs": counters.epoch,
        "updates": counters.updates, "parameters": sum(p.numel() for p in net.parameters()),
        "images_per_second": counters.images / counters.time_learning if counters.time_learning else None,
        "tokens": (math.prod(IMAGE_SHAPES[cfg.dataset][1:]) // cfg.patch ** 2 + 1) if cfg.model == "vit" else None,
    })
    return {**summary, "net": net} if keep_network else summary


def _train_svc(cfg: ViTConfig, data: ImageData, run: Run, counters: ViTCounters, clock: Stopwatch,
               base: dict[str, Any], keep_network: bool) -> dict[str, Any]:
    """The SVC baseline: an RBF support vector machine on the normalised pixels (one fit, no epochs)."""
    from sklearn.svm import SVC

    fitted = _FittedSVC()
    run.restore(svc=fitted, counters=counters)
    features = lambda images: data.normalize(images).flatten(1).cpu().numpy()          # noqa: E731
    if fitted.estimator is None:              # one fit, seconds at most: no progress bar
        with clock("learning"):
            fitted.estimator = SVC(C=cfg.svc_c, gamma=cfg.svc_gamma or "scale")
            fitted.estimator.fit(features(data.train_images), data.train_labels.cpu().numpy())
        counters.epoch = counters.step = 1
        run.log({"epoch": 1, "step": 1, "wall_time": run.elapsed()})
    with clock("evaluating"):
        predicted = torch.as_tensor(fitted.estimator.predict(features(data.test_images)))
        test_accuracy = (predicted == data.test_labels.cpu()).double().mean().item()
    run.log({"epoch": 1, "step": 1, "test_accuracy": test_accuracy, "wall_time": run.elapsed()})
    run.save()
    summary = run.finish({
        **base, "test_accuracy": test_accuracy, "train_seconds": counters.time_learning,
        "eval_seconds": counters.time_evaluating, "wall_seconds": run.elapsed(), "epochs": 1, "updates": 0,
        "parameters": int(fitted.estimator.support_vectors_.size), "images_per_second": None, "tokens": None,
        "support_vectors": int(fitted.estimator.support_vectors_.shape[0]),
    })
    return {**summary, "svc": fitted.estimator} if keep_network else summary
