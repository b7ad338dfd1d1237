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


def plot_runs(runs: dict[str, list[dict]], path: Path, title: str, window: int = 10) -> Path:
    """Per objective (one colour): training reward, greedy accuracy on every problem and policy entropy;
    thin lines are single seeds, bold lines their mean."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    panels = [("reward", lambda r: (_steps(r), moving_average([s["reward"] for s in r["steps"]], window))),
              ("greedy", lambda r: ([e["step"] for e in r["evals"]], np.array([e["greedy_accuracy"] for e in r["evals"]]))),
              ("entropy", lambda r: (_steps(r), moving_average([s["entropy"] for s in r["steps"]], window)))]
    for i, (name, seeds) in enumerate(runs.items()):
        for ax, (_, curve) in zip(axes, panels):
            curves = [curve(r) for r in seeds]
            for x, y in curves:
                ax.plot(x, y, color=f"C{i}", alpha=0.3, lw=0.8)
            ax.plot(curves[0][0], np.mean([y for _, y in curves], axis=0), color=f"C{i}", lw=2,
                    label=f"{name} (mean of {len(curves)} seed{'s' if len(curves) > 1 else ''})")
    axes[0].set(xlabel="RL step", ylabel="mean reward of the step's rollouts", ylim=(-0.02, 1.02),
                title=f"training reward, temperature 1 ({window}-step mean)")
    axes[1].set(xlabel="RL step", ylabel="share of problems solved", ylim=(-0.02, 1.02), title="greedy accuracy, all problems")
    axes[2].set(xlabel="RL step", ylabel="nats / token", title=f"policy entropy on sampled tokens ({window}-step mean)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _steps(run: dict) -> list[int]:
    return [s["step"] for s in run["steps"]]
