"""Typed results of train-head and eval-head (their JSON form is ``metrics.json`` and
``eval-head --json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmprep.results import Result, json_name

Metrics = dict[str, Any]  # R@1, R@5, R@10, median_rank, mean_rank, queries, clips, R@K_ci


@dataclass
class EvalResult(Result):
    """Any-to-any retrieval of one set of heads on one set of clips."""

    clips: int  # evaluation clips (with two or more of the modalities)
    pair_score: str  # cosine or volume
    rows: dict[str, int]  # rows per modality (captions for text)
    # "text->video": R@1/5/10, median and mean rank, "queries", "clips" (those with both
    # modalities), "R@K_ci" (95% bootstrap interval over the clips)
    pairs: dict[str, Metrics]
    tuples: dict[str, Metrics]  # "text->(video,audio)" and back, by GRAM volume
    mean_r1: float = field(metadata=json_name("mean_R@1"))  # mean R@1 over the pairs
    split: str | None = None  # what was evaluated (split name or holdout share)
    run: str | None = None  # the run folder (eval-head)
    loss: str | None = None  # the run's loss (eval-head)
    coverage: dict[str, float] = field(default_factory=dict)  # share of clips with each
    complete_only: bool = False  # only clips with every modality were evaluated


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
    recipe: str = "none"  # the paper settings applied (--recipe)
    train_modality_clips: dict[str, int] = field(default_factory=dict)  # clips having each
    clips_per_epoch: int = 0  # clips in the training batches of one epoch


@dataclass
class CompareResult(Result):
    """Paired-bootstrap differences between two groups of runs (``mmprep compare``)."""

    runs_a: list[str]
    runs_b: list[str]
    features: str
    clips: int  # evaluation clips
    n_boot: int  # bootstrap resamples
    # "video->audio": {"R@1": {"a", "b", "diff", "ci": [lo, hi], "significant"}, ...,
    # "queries", "clips"}
    tables: dict[str, dict[str, Any]]
