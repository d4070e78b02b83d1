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
    import numpy as np

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
    names, mat = r1_matrix(metrics["eval"]["pairs"])
    arr = np.array(mat, dtype=float)
    im = ax2.imshow(np.nan_to_num(arr, nan=0.0), vmin=0, vmax=1, cmap="viridis")
    ax2.set_xticks(range(len(names)), names)
    ax2.set_yticks(range(len(names)), names)
    ax2.set_xlabel("gallery")
    ax2.set_ylabel("query")
    for i in range(len(names)):
        for j in range(len(names)):
            if i != j:
                ax2.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center",
                         color="white" if arr[i, j] < 0.6 else "black", fontsize=10)
    tuples = metrics["eval"].get("tuples", {})
    sub = "; ".join(f"{k} {v['R@1']:.2f}" for k, v in tuples.items())
    ax2.set_title(f"R@1 on {metrics['eval']['clips']} {metrics.get('eval_split', '')} clips"
                  + (f"\nGRAM tuples: {sub}" if sub else ""), fontsize=9)
    fig.colorbar(im, ax=ax2, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
