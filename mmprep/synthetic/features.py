"""Synthetic feature caches with a known shared latent, for tests, demos and benchmarks.

Each clip draws a shared latent ``s`` (what happens in the clip): a category centre plus
instance detail, so clips of one category are hard negatives for each other. Each
modality observes ``s`` imperfectly: its own noisy copy ``s + obs_noise * eps`` (audio
cannot see colour; a caption mentions some details only). Noise at this level cannot be
filtered out by any head, so it sets the attainable retrieval accuracy; isotropic noise
added to high-dimensional features alone would be averaged away. The observed latent
and a private latent (camera, microphone, wording: information the other modalities do
not share) go through the modality's own fixed random two-layer tanh network; Gaussian
feature noise and a constant offset (real encoder features are not centred) are added.
Each caption is a separate observation with its own private latent. Deterministic
given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmprep.errors import ConfigError
from mmprep.features import FeatureSet, Modality, write_features


@dataclass
class FeatureGenConfig:
    """Generator settings (defaults are the ones the README results use)."""

    n: int = 12000  # clips
    test: int = 1000  # clips in split "test"
    val: int = 1000  # clips in split "val"; the rest are "train"
    dims: dict[str, int] = field(
        default_factory=lambda: {"video": 512, "audio": 768, "text": 384})
    latent_dim: int = 32  # shared latent
    categories: int = 64  # shared latent = category centre (std 1) + instance detail
    instance_std: float = 0.5  # std of the instance detail around the category centre
    obs_noise: dict[str, float] = field(  # std of each modality's view of the latent
        default_factory=lambda: {"video": 0.3, "audio": 0.6, "text": 0.4})
    private_dim: int = 32  # per-modality (per-caption for text) nuisance latent
    hidden_dim: int = 1024  # width of each modality's random network
    gain: float = 1.5  # std of the tanh pre-activations (1.5: clearly nonlinear)
    noise: dict[str, float] = field(  # feature noise std, relative to the signal std
        default_factory=lambda: {"video": 0.5, "audio": 1.0, "text": 0.5})
    captions: int = 5  # captions per clip (maximum)
    min_captions: int | None = None  # if set, counts drawn uniformly in [min, captions]
    missing_audio: float = 0.0  # share of clips without audio (audio_mask False)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError("n must be >= 2")
        if self.test < 0 or self.val < 0 or self.test + self.val >= self.n:
            raise ValueError("test + val must be smaller than n (some clips must train)")
        if "text" not in self.dims or len(self.dims) < 2:
            raise ValueError("dims needs 'text' and at least one clip-level modality")
        if any(d < 1 for d in self.dims.values()):
            raise ValueError("dims must be >= 1")
        for name in ("noise", "obs_noise"):
            unknown = sorted(set(getattr(self, name)) - set(self.dims))
            if unknown:
                raise ValueError(f"{name} names unknown modalities: {', '.join(unknown)}")
            if any(v < 0 for v in getattr(self, name).values()):
                raise ValueError(f"{name} values must be >= 0")
        if self.categories < 1 or self.instance_std < 0:
            raise ValueError("categories must be >= 1 and instance_std >= 0")
        if self.captions < 1:
            raise ValueError("captions must be >= 1")
        if self.min_captions is not None and not 1 <= self.min_captions <= self.captions:
            raise ValueError("min_captions must be within 1..captions")
        if not 0 <= self.missing_audio < 1:
            raise ValueError("missing_audio must be in [0, 1)")
        if min(self.latent_dim, self.private_dim, self.hidden_dim) < 1:
            raise ValueError("latent_dim, private_dim and hidden_dim must be >= 1")


class _RandomMap:
    """x = W2 tanh(gain * W1 [s; p] + b1) + offset + noise * signal_std * eps."""

    def __init__(self, rng: np.random.Generator, in_dim: int, cfg: FeatureGenConfig, dim: int,
                 noise: float):
        self.w1 = (rng.standard_normal((in_dim, cfg.hidden_dim))
                   * (cfg.gain / np.sqrt(in_dim))).astype(np.float32)
        self.b1 = (rng.standard_normal(cfg.hidden_dim) * 0.5).astype(np.float32)
        self.w2 = (rng.standard_normal((cfg.hidden_dim, dim)) / np.sqrt(cfg.hidden_dim)
                   ).astype(np.float32)
        probe = rng.standard_normal((2048, in_dim)).astype(np.float32)
        signal = np.tanh(probe @ self.w1 + self.b1) @ self.w2
        self.scale = float(signal.std())
        self.offset = signal.mean(0) + rng.standard_normal(dim) * self.scale
        self.noise = noise

    def __call__(self, latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.tanh(latent.astype(np.float32) @ self.w1 + self.b1) @ self.w2 + self.offset
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(self.noise * self.scale)
        return x.astype(np.float32, copy=False)


def generate_features(cfg: FeatureGenConfig, *, chunk: int = 4096) -> FeatureSet:
    """Build the feature set in memory (chunked so large n stays bounded)."""
    rng = np.random.default_rng(cfg.seed)
    in_dim = cfg.latent_dim + cfg.private_dim
    maps = {m: _RandomMap(rng, in_dim, cfg, d, cfg.noise.get(m, 0.5))
            for m, d in cfg.dims.items()}
    if cfg.min_captions is None:
        counts = np.full(cfg.n, cfg.captions)
    else:
        counts = rng.integers(cfg.min_captions, cfg.captions + 1, size=cfg.n)
    owner = np.repeat(np.arange(cfg.n), counts)
    data = {m: np.empty((owner.size if m == "text" else cfg.n, d), np.float32)
            for m, d in cfg.dims.items()}
    centres = rng.standard_normal((cfg.categories, cfg.latent_dim))
    category = rng.integers(0, cfg.categories, cfg.n)
    shared = centres[category] + cfg.instance_std * rng.standard_normal((cfg.n, cfg.latent_dim))

    def observe(m: str, s: np.ndarray) -> np.ndarray:
        seen = s + cfg.obs_noise.get(m, 0.0) * rng.standard_normal(s.shape)
        private = rng.standard_normal((s.shape[0], cfg.private_dim))
        return maps[m](np.concatenate([seen, private], 1), rng)

    for start in range(0, cfg.n, chunk):
        rows = slice(start, min(start + chunk, cfg.n))
        for m in maps:
            if m != "text":
                data[m][rows] = observe(m, shared[rows])
    for start in range(0, owner.size, chunk):
        rows = slice(start, min(start + chunk, owner.size))
        data["text"][rows] = observe("text", shared[owner[rows]])
    split = np.array(["train"] * cfg.n, dtype=object)
    order = rng.permutation(cfg.n)
    split[order[: cfg.test]] = "test"
    split[order[cfg.test: cfg.test + cfg.val]] = "val"
    attrs = {"encoder": "synthetic:mmprep.synthetic.features", "weights_sha256": "",
             "preprocessing": {"seed": cfg.seed}}
    modalities = {}
    for m in cfg.dims:
        mod = Modality(data=data[m], attrs=dict(attrs))
        if m == "text":
            mod.owner = owner
            mod.captions = [f"caption {j} of clip {i}" for i, j in
                            zip(owner, np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts,
                                                                         counts))]
        if m == "audio" and cfg.missing_audio > 0:
            mod.mask = rng.random(cfg.n) >= cfg.missing_audio
            mod.data[~mod.mask] = 0.0
        modalities[m] = mod
    keys = [f"clip{i:07d}" for i in range(cfg.n)]
    from mmprep.config import to_dict

    return FeatureSet(keys=keys, split=np.array([str(s) for s in split]), modalities=modalities,
                      attrs={"generator": to_dict(cfg)})


def write_sample_features(path, cfg: FeatureGenConfig):
    """Generate and write a feature cache; returns its path."""
    try:
        fs = generate_features(cfg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return write_features(path, fs)


def latent_ceiling(cfg: FeatureGenConfig, clips: int = 1000, seed: int = 0) -> dict[str, float]:
    """R@1 of nearest-neighbour retrieval on the noisy latents the modalities observe
    (one caption per clip), before the nonlinear maps, private latents and feature
    noise: about the best any heads can reach on ``clips`` test clips of this world."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((cfg.categories, cfg.latent_dim))
    shared = (centres[rng.integers(0, cfg.categories, clips)]
              + cfg.instance_std * rng.standard_normal((clips, cfg.latent_dim)))
    seen = {m: shared + cfg.obs_noise.get(m, 0.0) * rng.standard_normal(shared.shape)
            for m in cfg.dims}
    out = {}
    names = list(cfg.dims)
    for q in names:
        for g in names:
            if q != g:
                d = ((seen[q][:, None, :] - seen[g][None, :, :]) ** 2).sum(-1)
                out[f"{q}->{g}"] = float((d.argmin(1) == np.arange(clips)).mean())
    return out
