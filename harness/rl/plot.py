"""Reward curves of an RL comparison run (matplotlib, PNG)."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def moving_average(values: list[float], window: int) -> np.ndarray:
    """Trailing mean over up to `window` points (shorter at the start, never padded)."""
    x = np.asarray(values, dtype=float)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (csum[idx] - csum[lo]) / (idx - lo)


def plot_runs(runs: dict[str, dict], path: Path, title: str, window: int = 10) -> Path:
    """Three panels per objective: training reward (sampled, raw and moving average), greedy accuracy on
    every problem, and the policy's mean token entropy."""
    fig, (ax_r, ax_g, ax_e) = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (name, run) in enumerate(runs.items()):
        color = f"C{i}"
        steps = [s["step"] for s in run["steps"]]
        reward = [s["reward"] for s in run["steps"]]
        ax_r.plot(steps, reward, color=color, alpha=0.2, lw=0.8)
        ax_r.plot(steps, moving_average(reward, window), color=color, lw=2, label=name)
        ax_g.plot([e["step"] for e in run["evals"]], [e["greedy_accuracy"] for e in run["evals"]],
                  color=color, marker="o", ms=3, lw=1.5, label=name)
        ax_e.plot(steps, moving_average([s["entropy"] for s in run["steps"]], window), color=color, lw=1.5, label=name)
    ax_r.set(xlabel="RL step", ylabel="mean reward of the step's rollouts",
             title=f"training reward (faint: per step; bold: {window}-step mean)")
    ax_g.set(xlabel="RL step", ylabel="greedy accuracy (all problems)", title="greedy accuracy", ylim=(-0.02, 1.02))
    ax_e.set(xlabel="RL step", ylabel="nats / token", title=f"policy entropy on sampled tokens ({window}-step mean)")
    for ax in (ax_r, ax_g, ax_e):
        ax.grid(alpha=0.3)
        ax.legend()
    ax_r.set_ylim(-0.02, 1.02)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
