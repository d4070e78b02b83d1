"""Typed configuration of ``mmprep train-head`` (pipeline YAML section ``train_head``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LossName = Literal["gram", "pmrl", "infonce"]
Pairs = Literal["anchor", "all"]
Device = Literal["auto", "cpu", "cuda"]
PairScore = Literal["cosine", "volume"]  # pairwise retrieval score (eval-head)
RecipeName = Literal["none", "gram-paper", "pmrl-paper"]

# The papers' own training settings, applied under the command-line values (--recipe).
# gram-paper: GRAM's public code (ispamm/GRAM): the volume loss anchored on text only,
# label smoothing 0.1, a raw learnable temperature (init 0.07, weight-decayed, never
# clamped) and all-gathered batches that carry no gradient (``stop_gradient``).
# pmrl-paper: PMRL's public code (Xiaohao-Liu/PMRL), fine-tuning setting: tau_sv 0.05
# (0.01 for pretraining: --tau-sv 0.01), a fixed tau_reg 0.1.
RECIPES: dict[str, dict[str, object]] = {
    "none": {},
    "gram-paper": {"loss.name": "gram", "loss.pure": True, "loss.anchor": "text",
                   "loss.label_smoothing": 0.1, "loss.temperature": 0.07,
                   "loss.temperature_form": "raw", "loss.learn_temperature": True,
                   "loss.stop_gradient": True},
    "pmrl-paper": {"loss.name": "pmrl", "loss.pure": True, "loss.tau_sv": 0.05,
                   "loss.temperature": 0.1, "loss.learn_temperature": False},
}


@dataclass
class HeadConfig:
    """One projection head per modality, all with the same output dimension."""

    kind: Literal["linear", "mlp"] = "linear"
    out_dim: int = 512
    hidden_dim: int = 1024  # mlp only
    dropout: float = 0.0  # mlp only
    # standardize: per-dimension mean/std of the training rows (stored with the heads);
    # l2: unit-norm rows (scaled by sqrt(dim)); none: raw features
    input_norm: Literal["standardize", "l2", "none"] = "standardize"

    def __post_init__(self) -> None:
        if self.out_dim < 1 or self.hidden_dim < 1:
            raise ValueError("out_dim and hidden_dim must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")


@dataclass
class LossConfig:
    """The objective. ``pure`` keeps the papers' exact loss; otherwise the documented
    additions below apply (see the README section on the training pitfall)."""

    name: LossName = "gram"
    anchor: str = "text"  # GRAM anchor, InfoNCE anchor, and the tuple-retrieval anchor
    pure: bool = False
    temperature: float = 0.07  # initial temperature of the contrastive logits
    learn_temperature: bool = True
    temperature_min: float = 0.01  # clamp of the learnable temperatures (form log)
    temperature_max: float = 1.0
    # log: learn log(tau), clamped, no weight decay; raw: learn tau itself, weight-decayed
    # and unclamped (the GRAM authors' parameterisation)
    temperature_form: Literal["log", "raw"] = "log"
    # gram: the gathered side of each direction carries no gradient (the GRAM authors'
    # all-gather); anchor->tuple trains the anchors, tuple->anchor the others
    stop_gradient: bool = False
    label_smoothing: float = 0.0
    pairs: Pairs = "anchor"  # infonce: each non-anchor modality with the anchor, or all pairs
    tau_sv: float = 0.5  # PMRL: temperature of the singular-value softmax (0.1 saturates)
    reg_weight: float = 1.0  # PMRL: weight of the leading-singular-vector contrastive term
    # additions for heads trained from scratch (ignored when pure):
    gram_anchors: Pairs = "all"  # all: average the GRAM loss over every modality as anchor
    pair_weight: float = 1.0  # weight of pairwise InfoNCE terms over pair_set
    pair_set: Pairs = "anchor"
    pair_decay: bool = False  # anneal pair_weight to 0 with a cosine over training

    def __post_init__(self) -> None:
        if not self.anchor:
            raise ValueError("anchor must name a modality")
        if not 0 < self.temperature_min <= self.temperature <= self.temperature_max:
            raise ValueError("need 0 < temperature_min <= temperature <= temperature_max")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("label_smoothing must be in [0, 1)")
        if self.tau_sv <= 0:
            raise ValueError("tau_sv must be > 0")
        if self.reg_weight < 0 or self.pair_weight < 0:
            raise ValueError("reg_weight and pair_weight must be >= 0")


@dataclass
class OptimConfig:
    """AdamW with linear warmup and cosine decay."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # share of the steps spent warming up
    min_lr: float = 0.01  # final learning rate, as a share of lr
    grad_clip: float = 1.0  # max gradient norm (0: off)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (contrastive losses need negatives)")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")
        if not 0 <= self.warmup < 1 or not 0 <= self.min_lr <= 1:
            raise ValueError("warmup must be in [0, 1) and min_lr in [0, 1]")
        if self.grad_clip < 0:
            raise ValueError("grad_clip must be >= 0")


@dataclass
class DataConfig:
    """Which rows and modalities train and evaluate."""

    modalities: list[str] | None = None  # default: every modality in the cache
    train_split: str = "train"
    eval_split: str = "test"
    holdout: float = 0.0  # > 0: ignore the cache's splits; hold out this share for eval
    loading: Literal["auto", "memory", "stream"] = "auto"
    eval_every: int = 0  # epochs between evaluations on a val subset (0: only at the end)
    val_split: str = "val"
    val_max_clips: int = 1000
    # train and evaluate only on clips with every modality (otherwise each clip with two
    # or more, masked; each evaluation table over the clips that have its modalities)
    complete_only: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.holdout < 1:
            raise ValueError("holdout must be in [0, 1)")
        if self.modalities is not None and len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities are listed twice")
        if self.eval_every < 0 or self.val_max_clips < 2:
            raise ValueError("eval_every must be >= 0 and val_max_clips >= 2")


@dataclass
class TrainHeadConfig:
    loss: LossConfig = field(default_factory=LossConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    device: Device = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast the heads' matmuls
    threads: int = 0  # torch CPU threads (0: torch's default)
    log_every: int = 20  # steps between log lines
    pipeline: str = ""  # preset name, when built from one
    recipe: RecipeName = "none"  # the paper settings applied (RECIPES), for the record
