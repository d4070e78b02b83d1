"""Typed results of train-head and eval-head (their JSON form is ``metrics.json`` and
``eval-head --json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmprep.results import Result, json_name

Metrics = dict[str, float]  # R@1, R@5, R@10, median_rank, (chance R@1), queries


@dataclass
class EvalResult(Result):
    """Any-to-any retrieval of one set of heads on one set of clips."""

    clips: int  # evaluation clips
    pair_score: str  # cosine or volume
    rows: dict[str, int]  # rows per modality (captions for text)
    pairs: dict[str, Metrics]  # "text->video": metrics
    tuples: dict[str, Metrics]  # "text->(video,audio)" and back, by GRAM volume
    mean_r1: float = field(metadata=json_name("mean_R@1"))  # mean R@1 over the pairs
    split: str | None = None  # what was evaluated (split name or holdout share)
    run: str | None = None  # the run folder (eval-head)
    loss: str | None = None  # the run's loss (eval-head)


@dataclass
class TrainResult(Result):
    """A train-head run: what was trained and its final evaluation (``metrics.json``)."""

    loss: str
    pure: bool
    eval_split: str
    train_clips: int
    steps: int
    train_seconds: float
    loop_seconds: float
    samples_per_second: float
    final_temperatures: dict[str, float]
    eval: EvalResult
    history: list[dict[str, Any]] = field(default_factory=list)
