"""Expert-utilisation heatmaps (layer x expert) from routing summaries (m1bench.model.routing)."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def utilisation(summary: dict) -> np.ndarray:
    """Share of each layer's routed tokens that went to each expert; 1/E everywhere is perfect balance."""
    counts = np.asarray(summary["counts"], dtype=float)
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def plot_heatmap(summary: dict, path, title: str = "expert utilisation") -> Path:
    share = utilisation(summary)
    layers, experts = share.shape
    fig, ax = plt.subplots(figsize=(max(4, experts * 0.35 + 2), max(3, layers * 0.18 + 1.5)))
    im = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0)
    ax.set_xlabel("expert")
    ax.set_ylabel("layer")
    ax.set_title(f"{title}\n{summary['tokens']:,} tokens, top-{summary['top_k']}; "
                 f"mean CV {np.mean(summary['cv']):.2f}, busiest {max(summary['max_share']):.0%}")
    fig.colorbar(im, ax=ax, label="share of the layer's routed tokens")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
