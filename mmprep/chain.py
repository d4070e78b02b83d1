"""``mmprep run``: a declared chain sample-data/manifest -> extract -> embed -> train-head.

A chain pipeline is a YAML file with one section per step (``extract``, ``embed``,
``train_head``; see :mod:`mmprep.presets`) and a ``run`` section (:class:`ChainConfig`):
where the clips come from and which losses to train. Everything lands in one folder::

    OUT/raw/           generated clips and their manifest (run.sample_data > 0)
    OUT/shards/        extract's WebDataset shards (+ errors.jsonl)
    OUT/features.h5    embed's feature cache
    OUT/runs/LOSS/     one train-head run per loss
    OUT/results.json   the side-by-side retrieval table (also results.md, report.png)
    OUT/chain.json     what each step was run with, for resuming

Rerunning resumes: a step whose inputs and settings are unchanged since it finished is
skipped; an interrupted step resumes through its own mechanism (extract skips finished
shards, embed fills in missing keys). A step whose settings changed is refused (each
step's own check) unless ``overwrite``, which starts the whole chain afresh.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mmprep.config import config_hash, to_dict
from mmprep.embed.config import EmbedConfig
from mmprep.errors import ConfigError, MmprepError
from mmprep.extract.sample import ExtractConfig
from mmprep.heads.config import TrainHeadConfig
from mmprep.results import Result

STEPS = ("extract", "embed", "train_head")
SECTIONS = {"extract": ExtractConfig, "embed": EmbedConfig, "train_head": TrainHeadConfig}
TOP_KEYS = {"name", "description", "run", *SECTIONS}
LOSSES = ("gram", "pmrl", "infonce")
STATE_FILE = "chain.json"


@dataclass
class ChainConfig:
    """The ``run:`` section: the input and the train-head runs of a chain."""

    manifest: str | None = None  # path or URL of the manifest (or a folder of videos)
    sample_data: int = 0  # > 0 and no manifest: generate this many synthetic clips
    sample_seed: int = 0
    sample_seconds: float = 2.0
    losses: list[str] = field(default_factory=lambda: list(LOSSES))
    until: Literal["extract", "embed", "train_head"] = "train_head"  # last step to run

    def __post_init__(self) -> None:
        if self.sample_data < 0 or self.sample_seconds <= 0:
            raise ValueError("sample_data must be >= 0 and sample_seconds > 0")
        bad = [x for x in self.losses if x not in LOSSES]
        if bad or not self.losses or len(set(self.losses)) != len(self.losses):
            raise ValueError(f"losses must be distinct names among {', '.join(LOSSES)}, "
                             f"got {self.losses}")


@dataclass
class Chain:
    name: str
    run: ChainConfig
    extract: ExtractConfig
    embed: EmbedConfig
    train_head: TrainHeadConfig

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "run": to_dict(self.run),
                **{s: to_dict(getattr(self, s)) for s in SECTIONS}}


@dataclass
class ChainOptions:
    """How the chain runs, not what it produces."""

    overwrite: bool = False
    workers: int | None = None  # extract worker processes (None: every core)
    progress: bool = True
    log: Callable[[str], None] = print


def load_chain(pipeline: str, overrides: list[str] | tuple[str, ...] = (),
               manifest: str | None = None) -> Chain:
    """The chain declared by a pipeline.

    Args:
        pipeline: a preset name or a YAML path.
        overrides: ``SECTION.KEY=VALUE`` (sections: run, extract, embed, train_head).
        manifest: the input manifest (default: the pipeline's, or generated sample data).
    """
    from mmprep.presets import build_config, load_pipeline

    doc = load_pipeline(pipeline)
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"pipeline {pipeline}: unknown section(s) {', '.join(unknown)} "
                          f"(allowed: {', '.join(sorted(TOP_KEYS))})")
    by_section: dict[str, list[str]] = {s: [] for s in ("run", *SECTIONS)}
    for text in overrides:
        section, _, rest = text.partition(".")
        if section not in by_section or not rest:
            raise ConfigError(f"override {text!r} must start with one of "
                              f"{', '.join(by_section)} (e.g. embed.batch_size=16)")
        by_section[section].append(rest)
    values = {"manifest": manifest} if manifest else {}
    run = build_config(ChainConfig, "run", pipeline=pipeline, values=values,
                       overrides=by_section["run"])
    sections = {s: build_config(cls, s, pipeline=pipeline, overrides=by_section[s])
                for s, cls in SECTIONS.items()}
    return Chain(name=str(doc.get("name", Path(pipeline).stem)), run=run, **sections)


# --------------------------------------------------------------------------- state
def _read_state(out: Path) -> dict[str, Any]:
    path = out / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged state only costs a re-check of every step


def _write_state(out: Path, state: dict[str, Any]) -> None:
    from mmprep.storage import atomic_write_bytes

    atomic_write_bytes(out / STATE_FILE, (json.dumps(state, indent=1) + "\n").encode())


def _file_stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


# --------------------------------------------------------------------------- steps
def _input_samples(chain: Chain, out: Path, state: dict, opts: ChainOptions
                   ) -> tuple[list, str]:
    """The chain's samples (generating the sample data first when asked) and a key."""
    from mmprep.manifest import manifest_fingerprint, read_manifest

    run = chain.run
    if run.manifest:
        samples = read_manifest(run.manifest)
    elif run.sample_data:
        from mmprep.synthetic.clips import write_sample_data

        key = config_hash({"n": run.sample_data, "seed": run.sample_seed,
                           "seconds": run.sample_seconds})
        manifest = out / "raw" / "manifest.jsonl"
        if state.get("sample_data", {}).get("key") == key and manifest.is_file():
            opts.log(f"sample-data: {run.sample_data} clips already in {manifest.parent}")
        else:
            opts.log(f"sample-data: writing {run.sample_data} clips to {manifest.parent}")
            shutil.rmtree(out / "raw", ignore_errors=True)
            write_sample_data(out / "raw", run.sample_data, seed=run.sample_seed,
                              seconds=run.sample_seconds, progress=opts.progress)
            state["sample_data"] = {"key": key}
            _write_state(out, state)
        samples = read_manifest(manifest)
    else:
        raise ConfigError("no input: give a MANIFEST argument, or set run.manifest or "
                          "run.sample_data in the pipeline")
    if not samples:
        raise MmprepError("the manifest holds no samples")
    return samples, manifest_fingerprint(samples)


def _step_extract(chain: Chain, out: Path, state: dict, opts: ChainOptions,
                  redo: bool) -> dict:
    from mmprep.extract import RunOptions, extract
    from mmprep.extract.options import PoolOptions

    samples, fingerprint = _input_samples(chain, out, state, opts)
    key = config_hash({"manifest": fingerprint, "config": chain.extract.content_hash(),
                       "shards": to_dict(chain.extract.shards)})
    shards = out / "shards"
    done = state.get("extract", {})
    if not redo and done.get("key") == key and shards.is_dir():
        opts.log(f"extract: done before ({done['summary']['ok']} clips in {shards}), skipped")
        return done
    opts.log(f"extract: {len(samples)} samples -> {shards}")
    run_opts = RunOptions(pool=PoolOptions(workers=opts.workers), progress=opts.progress,
                          overwrite=redo)
    result = extract(samples, shards, chain.extract, run_opts)
    if result.all_failed:
        raise MmprepError(f"extract: every sample failed; see {result.errors_file}")
    if result.failed:
        opts.log(f"extract: {result.failed} sample(s) failed; see {result.errors_file}")
    return {"key": key, "summary": result.to_dict()}


def _step_embed(chain: Chain, out: Path, state: dict, opts: ChainOptions, upstream: str,
                redo: bool) -> dict:
    from mmprep.embed import EmbedOptions, embed, parts_dir_for

    if not chain.embed.encoders:
        raise ConfigError("the pipeline's embed section names no encoder: set e.g. "
                          "embed.video_encoder=efficientnet-lite0 embed.text_encoder=minilm")
    features = out / "features.h5"
    content = chain.embed.content_hash()
    key = config_hash({"shards": upstream, "embed": content})
    done = state.get("embed", {})
    if (not redo and done.get("key") == key and features.is_file()
            and done.get("stamp") == _file_stamp(features)):
        opts.log(f"embed: done before ({done['summary']['rows']} clips in {features}), skipped")
        return done
    started = features.exists() or parts_dir_for(features).exists()
    if started and not redo and done.get("upstream") not in (None, upstream):
        opts.log("embed: the shards changed since the feature cache was written; re-embedding")
        redo = True
    elif started and not redo and done.get("content") not in (None, content):
        raise MmprepError(f"{features} was written with other embed settings; rerun with "
                          "redo='embed' (--redo embed) to replace it, or overwrite "
                          "(--overwrite) to redo every step")
    state["embed"] = {"upstream": upstream, "content": content}  # in progress
    _write_state(out, state)
    opts.log(f"embed: {out / 'shards'} -> {features}")
    summary = embed(str(out / "shards"), features, chain.embed,
                    EmbedOptions(resume=started and not redo, overwrite=redo,
                                 progress=opts.progress,
                                 log=lambda msg: opts.log(f"embed: note: {msg}")))
    if summary.rows == 0:
        raise MmprepError(f"embed: no clip could be embedded; see {summary.errors_file}")
    return {"key": key, "upstream": upstream, "content": content,
            "stamp": _file_stamp(features), "summary": summary.to_dict()}


def loss_config(base: TrainHeadConfig, loss: str) -> TrainHeadConfig:
    from mmprep.config import from_dict

    data = to_dict(base)
    data["loss"]["name"] = loss
    return from_dict(TrainHeadConfig, data)


def _step_train(chain: Chain, out: Path, state: dict, opts: ChainOptions, upstream: str,
                redo: bool) -> dict[str, dict]:
    """One train-head run per loss. Runs are cheap and derived: one whose settings or
    features changed is retrained (a folder holding a run the chain did not record is
    refused by train_heads)."""
    from mmprep.heads.train import train_heads

    features = out / "features.h5"
    results = {}
    runs_state = state.setdefault("train_head", {})
    for loss in chain.run.losses:
        cfg = loss_config(chain.train_head, loss)
        run_dir = out / "runs" / loss
        key = config_hash({"features": upstream, "config": config_hash(cfg)})
        metrics_file = run_dir / "metrics.json"
        if not redo and runs_state.get(loss, {}).get("key") == key and metrics_file.is_file():
            opts.log(f"train-head {loss}: done before ({run_dir}), skipped")
            results[loss] = json.loads(metrics_file.read_text(encoding="utf-8"))
            continue
        opts.log(f"train-head {loss}: {features} -> {run_dir}")
        replace = redo or loss in runs_state
        runs_state[loss] = {"key": None}  # in progress: ours to replace on a rerun
        _write_state(out, state)
        results[loss] = train_heads(features, run_dir, cfg, progress=opts.progress,
                                    overwrite=replace)
        runs_state[loss] = {"key": key}
        _write_state(out, state)
    return results


# --------------------------------------------------------------------------- chain
@dataclass
class ChainResult(Result):
    """What ``mmprep run`` did: each step's summary and the side-by-side results
    (``results.json``'s content); ``embed``/``results`` are None for steps not run."""

    pipeline: str
    out: str
    extract: dict[str, Any]
    embed: dict[str, Any] | None = None
    results: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items() if v is not None}


def run_chain(chain: Chain, out: str | Path, opts: ChainOptions | None = None,
              redo: str | None = None) -> ChainResult:
    """Run a chain (extract -> embed -> train-head per loss), resuming finished steps.

    Args:
        chain: the chain (``load_chain``): its sections and ``run`` settings.
        out: the chain's folder (shards, features.h5, runs/, results, chain.json).
        opts: how the run goes (workers, progress, log, overwrite).
        redo: the first step to redo from scratch (later ones are redone too).

    Returns the step summaries and, when train_head ran, the results table.
    """
    opts = opts or ChainOptions()
    out = Path(out)
    if redo is not None and redo not in STEPS:
        raise ConfigError(f"redo: {redo!r} is not a step ({', '.join(STEPS)})")
    if opts.overwrite:
        for name in ("raw", "shards", "features.h5", "features.h5.parts", "runs", STATE_FILE,
                     "results.json", "results.md", "report.png"):
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        redo = "extract"
    out.mkdir(parents=True, exist_ok=True)
    state = _read_state(out)
    first_redo = STEPS.index(redo) if redo else len(STEPS)
    last = STEPS.index(chain.run.until)
    t0 = time.perf_counter()
    state["extract"] = _step_extract(chain, out, state, opts, redo=first_redo <= 0)
    _write_state(out, state)
    summary = ChainResult(pipeline=chain.name, out=str(out),
                          extract=state["extract"]["summary"])
    if last >= 1:
        state["embed"] = _step_embed(chain, out, state, opts, state["extract"]["key"],
                                     redo=first_redo <= 1)
        _write_state(out, state)
        summary.embed = state["embed"]["summary"]
    if last >= 2:
        runs = _step_train(chain, out, state, opts, state["embed"]["key"],
                           redo=first_redo <= 2)
        summary.results = results_table(runs)
        summary.seconds = round(time.perf_counter() - t0, 1)
        write_results(out, summary, runs)
    else:
        summary.seconds = round(time.perf_counter() - t0, 1)
    return summary


# --------------------------------------------------------------------------- results
def results_table(runs: dict[str, dict]) -> dict[str, Any]:
    """Side by side: for every retrieval direction, each loss's R@1/5/10 and median rank."""
    first = next(iter(runs.values()))["eval"]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for section in ("pairs", "tuples"):
        for name in first[section]:
            table[name] = {loss: m["eval"][section][name] for loss, m in runs.items()
                           if name in m["eval"][section]}
    return {
        "clips": first["clips"], "split": next(iter(runs.values())).get("eval_split"),
        "rows": first["rows"], "directions": table,
        "mean_R@1": {loss: m["eval"]["mean_R@1"] for loss, m in runs.items()},
        "train_seconds": {loss: m.get("train_seconds") for loss, m in runs.items()},
    }


def format_results(results: dict[str, Any], markdown: bool = False) -> str:
    losses = list(results["mean_R@1"])
    head = (f"R@1 on {results['clips']} {results['split']} clips "
            f"({', '.join(f'{n} {m}' for m, n in results['rows'].items())} rows)")
    rows = [(name, [cells.get(loss, {}).get("R@1") for loss in losses])
            for name, cells in results["directions"].items()]
    rows.append(("mean pairwise R@1", [results["mean_R@1"][loss] for loss in losses]))

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    if markdown:
        lines = [head, "", "| query → gallery | " + " | ".join(losses) + " |",
                 "|---|" + "---|" * len(losses)]
        lines += [f"| {n.replace('->', ' → ')} | " + " | ".join(fmt(v) for v in vals) + " |"
                  for n, vals in rows]
        return "\n".join(lines) + "\n"
    lines = [head, f"{'query -> gallery':<30}" + "".join(f"{loss:>9}" for loss in losses)]
    lines += [f"{n:<30}" + "".join(f"{fmt(v):>9}" for v in vals) for n, vals in rows]
    return "\n".join(lines)


def write_results(out: Path, summary: ChainResult, runs: dict[str, dict]) -> None:
    from mmprep.heads.report import write_comparison
    from mmprep.storage import atomic_write_bytes

    atomic_write_bytes(out / "results.json", (summary.to_json() + "\n").encode())
    text = (f"# {summary.pipeline}: retrieval of the train-head runs\n\n"
            + format_results(summary.results, markdown=True))
    atomic_write_bytes(out / "results.md", text.encode("utf-8"))
    write_comparison(out / "report.png", runs)
