"""``ShardDataset``: extract's shards as a deterministic, resumable ``IterableDataset``.

The epoch's order is a permutation of all samples drawn from ``(seed, epoch)`` alone.
Rank ``r`` of ``W`` takes positions ``r, r + W, r + 2W, ...`` of it, after the order is
padded with its own first samples to a multiple of ``W`` (``uneven="pad"``) or cut to
one (``"drop"``), so every rank has exactly ``len(ds)`` samples. The rank's samples are
cut into batches of ``batch_size``; DataLoader worker ``w`` of ``K`` reads batches
``w, w + K, ...``, which the DataLoader hands out in turn: the batches are the same for
any number of workers. Samples are read by random access through the shard index (one
seek and one read each).
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Literal

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from mmprep.errors import MmprepError, UsageError
from mmprep.loader.decode import BadSample, decode_item
from mmprep.loader.source import Files, list_tars, load_tables

log = logging.getLogger("mmprep.loader")

Sampling = Literal["uniform", "random"]
Captions = Literal["random", "first", "all"]
Uneven = Literal["pad", "drop"]
PROBE = 8  # samples tried at construction to check the shards are mmprep's


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise UsageError(f"{name}={value!r} is not one of: {', '.join(map(str, allowed))}")


def _dist_default(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return (dist.get_rank() if rank is None else rank,
                dist.get_world_size() if world_size is None else world_size)
    return (0 if rank is None else rank, 1 if world_size is None else world_size)


class ShardDataset(IterableDataset):
    """Samples of extract's shards, each exactly once per epoch over all ranks (up to
    the padding of ``uneven="pad"``).

    Args:
        source: an extract output folder, a tar, a brace pattern or glob, or a list of
            paths/URLs (fsspec URLs work everywhere).
        num_frames: frames per item, chosen from the stored frames by their timestamps
            (None: all stored frames).
        sampling: ``uniform`` (the frame nearest each segment's middle) or ``random``
            (a stored frame within each segment, drawn from ``(seed, epoch, key)``).
        seed: seeds the order, the frame and the caption choices.
        shuffle: permute the samples each epoch (False: shard order).
        rank, world_size: this process's share; default: ``torch.distributed`` when
            initialised, else 0 and 1.
        captions: ``random`` (one per epoch), ``first``, or ``all`` (every caption).
        decode_frames: decode the chosen JPEG frames (False: ``jpeg``, their bytes).
        uint8: frames as uint8 instead of float32 normalised with the shard's mean/std.
        batch_size: the DataLoader's batch size; it makes batches independent of the
            number of workers (``make_loader`` sets it).
        uneven: ``pad`` (repeat the epoch's first samples) or ``drop`` (leave out the
            last ``N % world_size``) so that every rank has the same length.

    Items: ``__key__``, ``meta`` (``KEY.json``), ``video`` (T, 3, H, W), ``frame_times``
    (T,), ``audio`` (frames, mel bins) with ``audio_mask`` (0 frames without audio),
    ``text_ids``/``text_mask`` (tokens,) or (captions, tokens) with ``captions="all"``,
    ``caption``; ``__replaces__`` names a sample that could not be read, for which this
    one stands in ("" otherwise). Fields the shards do not hold are absent.
    """

    def __init__(self, source, *, num_frames: int | None = None,
                 sampling: Sampling = "uniform", seed: int = 0, shuffle: bool = True,
                 rank: int | None = None, world_size: int | None = None,
                 captions: Captions = "random", decode_frames: bool = True,
                 uint8: bool = False, batch_size: int = 1, uneven: Uneven = "pad"):
        _choice("sampling", sampling, ("uniform", "random"))
        _choice("captions", captions, ("random", "first", "all"))
        _choice("uneven", uneven, ("pad", "drop"))
        if num_frames is not None and num_frames < 1:
            raise UsageError("num_frames must be >= 1 (or None for every stored frame)")
        if batch_size < 1:
            raise UsageError("batch_size must be >= 1")
        self.rank, self.world_size = _dist_default(rank, world_size)
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise UsageError(f"rank {self.rank} is not within world_size {self.world_size}")
        self.num_frames, self.sampling, self.seed = num_frames, sampling, int(seed)
        self.shuffle, self.captions, self.decode_frames = shuffle, captions, decode_frames
        self.uint8, self.batch_size, self.uneven = uint8, batch_size, uneven
        self.tables = load_tables(list_tars(source))
        self.samples = [(t, i) for t, table in enumerate(self.tables)
                        for i in range(len(table.samples))]
        if not self.samples:
            raise MmprepError("the shards hold no samples")
        if uneven == "drop" and len(self.samples) < self.world_size:
            raise UsageError(f"{len(self.samples)} samples cannot be split over "
                             f"{self.world_size} ranks with uneven='drop'")
        self.epoch = 0
        self.skipped = 0  # samples of this process that could not be read
        self._resume = 0
        self._yielded = 0
        self._logged: set[str] = set()
        self._files = Files()
        self._probe()

    # -- the plan ------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Use the order and random choices of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n, w = len(self.samples), self.world_size
        return -(-n // w) if self.uneven == "pad" else n // w

    def epoch_order(self) -> np.ndarray:
        """Sample numbers of this rank for the current epoch, in order."""
        n = len(self.samples)
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(n)
                 if self.shuffle else np.arange(n))
        total = len(self) * self.world_size
        if total > n:
            order = np.concatenate([order, order[: total - n]])
        return order[:total][self.rank::self.world_size]

    def worker_positions(self, worker: int, workers: int) -> list[int]:
        """Positions in the rank's order that DataLoader worker ``worker`` reads."""
        n, b = len(self), self.batch_size
        return [p for j in range(worker, -(-n // b), workers)
                for p in range(j * b, min((j + 1) * b, n))]

    # -- reading -------------------------------------------------------------------------

    def key_of(self, sample: int) -> str:
        t, i = self.samples[sample]
        return self.tables[t].samples[i][0]

    def _rng(self, key: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode())])

    def _read(self, sample: int) -> dict[str, Any]:
        t, i = self.samples[sample]
        table = self.tables[t]
        entry = table.samples[i]
        try:
            members = self._files.read(table.url, entry)
            return decode_item(entry[0], members, num_frames=self.num_frames,
                               sampling=self.sampling, captions=self.captions,
                               decode_frames=self.decode_frames, uint8=self.uint8,
                               rng=self._rng(entry[0]))
        except BadSample as exc:
            raise BadSample(f"{table.url}: sample {entry[0]!r}: "
                            f"{str(exc).replace('KEY.', entry[0] + '.')}") from exc
        except (MmprepError, OSError, ValueError, RuntimeError) as exc:
            raise BadSample(f"{table.url}: sample {entry[0]!r}: {exc}") from exc

    def _probe(self) -> None:
        """Read the first samples: shards that are not mmprep's fail here, naming the
        member or field, instead of in a worker."""
        first = None
        for s in range(min(PROBE, len(self.samples))):
            try:
                self._read(s)
                return
            except BadSample as exc:
                first = first or exc
            finally:
                self._files.close()
        raise MmprepError(f"cannot load these shards: {first}")

    def _item(self, order: np.ndarray, pos: int) -> dict[str, Any]:
        """The item at ``pos``; an unreadable sample is counted, logged once per tar, and
        replaced by the next readable sample of the rank's order."""
        for step in range(len(order)):
            sample = int(order[(pos + step) % len(order)])
            try:
                item = self._read(sample)
            except BadSample as exc:
                self.skipped += 1
                url = self.tables[self.samples[sample][0]].url
                if url not in self._logged:
                    self._logged.add(url)
                    log.warning("skipped an unreadable sample (%s); it is replaced by the next "
                                "readable one, further failures in this tar are counted in "
                                "ShardDataset.skipped", exc)
                continue
            item["__replaces__"] = self.key_of(int(order[pos])) if step else ""
            return item
        raise MmprepError(f"no sample of rank {self.rank}'s share can be read "
                          f"({self.skipped} failed); see the warnings above")

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        start, self._resume = self._resume, 0
        return self._generate(self.worker_positions(worker, workers), start)

    def _generate(self, positions: list[int], start: int):
        order = self.epoch_order()
        self._yielded = start
        try:
            for j in range(start, len(positions)):
                item = self._item(order, positions[j])
                self._yielded = j + 1
                yield item
        finally:
            self._files.close()

    # -- resume --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Where this process (or DataLoader worker) is in the epoch; torchdata's
        ``StatefulDataLoader`` collects it from every worker."""
        return {"epoch": self.epoch, "yielded": self._yielded, "seed": self.seed,
                "rank": self.rank, "world_size": self.world_size,
                "batch_size": self.batch_size, "samples": len(self.samples)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the epoch of ``state`` after its last sample (the next ``iter``)."""
        for name in ("seed", "rank", "world_size", "batch_size", "samples"):
            mine = len(self.samples) if name == "samples" else getattr(self, name)
            if state.get(name) != mine:
                raise UsageError(f"the saved loader state has {name}={state.get(name)!r}, "
                                 f"this dataset {mine!r}: resume with the same settings")
        self.epoch = int(state["epoch"])
        self._resume = self._yielded = int(state["yielded"])


def make_loader(source, *, batch_size: int = 8, num_workers: int = 2, stateful: bool = True,
                **dataset_args):
    """A ``ShardDataset`` of ``source`` in a DataLoader that batches with ``collate``.

    ``stateful`` (default) gives torchdata's ``StatefulDataLoader``, whose
    ``state_dict()``/``load_state_dict()`` resume an epoch after its last batch; False
    gives a plain ``torch.utils.data.DataLoader``. ``dataset_args`` go to
    ``ShardDataset`` (``loader.dataset`` is it: call ``set_epoch`` there).
    """
    from mmprep.loader.collate import collate

    ds = ShardDataset(source, batch_size=batch_size, **dataset_args)
    if stateful:
        try:
            from torchdata.stateful_dataloader import StatefulDataLoader as Loader
        except ImportError as exc:
            raise MmprepError("stateful=True needs torchdata (pip install torchdata); "
                              "stateful=False gives a plain DataLoader") from exc
    else:
        from torch.utils.data import DataLoader as Loader
    return Loader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=collate,
                  persistent_workers=False)
