"""Probes of a trained memory on clips whose writes are known to be right or wrong."""

from __future__ import annotations

import numpy as np


def wrong_read_share(read_weights: np.ndarray, write_weights: np.ndarray,
                     wrong: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step with right and wrong slots: (read mass on wrong slots, their share of slots).

    Args:
      read_weights: `[B, T, N]` read weights of steps 0..T-1 (after that step's write).
      write_weights: `[B, T, N]`; step t's template goes to argmax of step t-1's (slot 0 at t=0).
      wrong: bool `[B, T]`, the template written at step t is another clip's.

    Returns:
      Two float arrays of equal length: the read mass on the wrong slots (normalised over the
      filled slots) and the fraction of filled slots that are wrong.
    """
    batch, steps, slots = read_weights.shape
    mass, share = [], []
    for b in range(batch):
        content = np.full(slots, -1)  # -1 empty, 0 right, 1 wrong
        for t in range(steps):
            slot = 0 if t == 0 else int(np.argmax(write_weights[b, t - 1]))
            content[slot] = int(wrong[b, t])
            filled = content >= 0
            if (content == 1).any() and (content == 0).any():
                mass.append(read_weights[b, t][content == 1].sum()
                            / read_weights[b, t][filled].sum())
                share.append((content == 1).sum() / filled.sum())
    return np.asarray(mass, np.float64), np.asarray(share, np.float64)


def selectivity_headline(ratios: list[float], wrong_writes: str, skipped: int = 0) -> str:
    """The `headline:` line of tools/read_selectivity.py: the mean ratio over the runs.

    Args:
      ratios: per run, read mass on the wrong slots / their share (in the order measured).
      wrong_writes: what a wrong write held (`other_clip` or `shifted`).
      skipped: runs without any step holding right and wrong slots (counted, not averaged).
    """
    values = [float(v) for v in ratios]
    mean = float(np.mean(values))
    if len(values) > 1:
        how = (f"mean of {len(values)} runs, spread +-{float(np.std(values, ddof=1)):.2f}; "
               f"per run {' / '.join(f'{v:.2f}' for v in values)}")
    else:
        how = "1 run"
    if skipped:
        how += f"; {skipped} run(s) without such a step left out"
    return (f"headline: read mass on wrong slots ({wrong_writes}) / their share = {mean:.2f} "
            f"({how}; 1 = the read ignores slot content)")


def agreement_after_runs(agreement: np.ndarray, wrong: np.ndarray) -> dict[str, np.ndarray]:
    """Groups per-step cos(T_retr, T_0) by where the step is relative to a run of wrong writes.

    Args:
      agreement: `[B, T]` cos(T_retr, T_0) of every step of clips written with `wrong`.
      wrong: bool `[B, T]`, step t's written template is wrong (one run per clip, or none).

    Returns:
      {"run_end": the last step of each run, "after_run": the first right step after it}, each a
      float64 array over the clips that have such a step.
    """
    run_end, after_run = [], []
    steps = wrong.shape[1]
    for b in range(wrong.shape[0]):
        for t in range(steps):
            if wrong[b, t] and (t + 1 == steps or not wrong[b, t + 1]):
                run_end.append(agreement[b, t])
            if t >= 1 and wrong[b, t - 1] and not wrong[b, t]:
                after_run.append(agreement[b, t])
    return {"run_end": np.asarray(run_end, np.float64),
            "after_run": np.asarray(after_run, np.float64)}
