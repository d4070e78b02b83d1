"""The run report: training loss curve and an any-to-any R@1 heatmap, as one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def r1_matrix(pairs: dict[str, dict[str, float]]) -> tuple[list[str], list[list[float]]]:
    """Modalities (in first-seen order) and the R@1 matrix [query][gallery] (NaN on the
    diagonal)."""
    names: list[str] = []
    for key in pairs:
        for m in key.split("->"):
            if m not in names:
                names.append(m)
    mat = [[pairs.get(f"{q}->{g}", {}).get("R@1", float("nan")) for g in names] for q in names]
    return names, mat


def write_report(path: str | Path, metrics: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = [h for h in metrics.get("history", []) if "loss" in h]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    if hist:
        steps = [h["step"] for h in hist]
        ax1.plot(steps, [h["loss"] for h in hist], label="total", color="black")
        for key in ("gram", "sv", "reg", "infonce", "pair"):
            if key in hist[0]:
                ax1.plot(steps, [h[key] for h in hist], label=key, alpha=0.7)
        ax1.set_xlabel("step")
        ax1.set_ylabel("loss")
        ax1.legend(fontsize=8)
    title = metrics.get("loss", "")
    if metrics.get("pure"):
        title += " (pure)"
    ax1.set_title(f"training loss: {title}")
    tuples = metrics["eval"].get("tuples", {})
    sub = "; ".join(f"{k} {v['R@1']:.2f}" for k, v in tuples.items())
    im = _heatmap(ax2, metrics["eval"]["pairs"],
                  f"R@1 on {metrics['eval']['clips']} {metrics.get('eval_split', '')} clips"
                  + (f"\nGRAM tuples: {sub}" if sub else ""))
    fig.colorbar(im, ax=ax2, fraction=0.046)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Write the figure atomically (a temporary file renamed into place)."""
    import matplotlib.pyplot as plt

    from mmprep.storage import commit_temp, exclusive_temp

    path = Path(path)
    tmp = exclusive_temp(path)
    try:
        fig.savefig(tmp, dpi=110, format="png")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    commit_temp(tmp, path)
    return path


def _heatmap(ax, pairs: dict[str, dict[str, float]], title: str):
    import numpy as np

    names, mat = r1_matrix(pairs)
    arr = np.array(mat, dtype=float)
    im = ax.imshow(np.nan_to_num(arr, nan=0.0), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("gallery")
    ax.set_ylabel("query")
    for i in range(len(names)):
        for j in range(len(names)):
            if i != j:
                ax.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center",
                        color="white" if arr[i, j] < 0.6 else "black", fontsize=10)
    ax.set_title(title, fontsize=9)
    return im


def write_comparison(path: str | Path, runs: dict[str, dict[str, Any]]) -> Path:
    """One any-to-any R@1 heatmap per run (``runs``: name -> metrics), side by side,
    and a grouped bar chart of every direction's R@1 (tuples included)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(runs)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * n + 6, 4.2),
                             gridspec_kw={"width_ratios": [1] * n + [1.6]})
    im = None
    for ax, (name, m) in zip(axes[:n], runs.items()):
        title = name + (" (pure)" if m.get("pure") else "")
        im = _heatmap(ax, m["eval"]["pairs"],
                      f"{title}: R@1, {m['eval']['clips']} {m.get('eval_split', '')} clips")
    fig.colorbar(im, ax=axes[n - 1], fraction=0.046)
    directions = []
    for m in runs.values():
        for key in [*m["eval"]["pairs"], *m["eval"].get("tuples", {})]:
            if key not in directions:
                directions.append(key)
    ax = axes[n]
    width = 0.8 / n
    x = np.arange(len(directions))
    for i, (name, m) in enumerate(runs.items()):
        cells = {**m["eval"]["pairs"], **m["eval"].get("tuples", {})}
        ax.bar(x + i * width - 0.4 + width / 2,
               [cells.get(d, {}).get("R@1", 0.0) for d in directions], width, label=name)
    ax.set_xticks(x, [d.replace("->", "\u2192") for d in directions], rotation=60,
                  ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("R@1")
    ax.legend(fontsize=8)
    ax.set_title("every direction, side by side", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
