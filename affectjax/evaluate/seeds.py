"""Results over seeds: mean with a 95 % interval, and verdicts that respect seed-to-seed spread.

A claim "A beats B" holds only when the difference exceeds the spread: the 95 % intervals of the
two means do not overlap. With one seed there is no spread, so every verdict is "inconclusive".
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def summarize(values: Sequence[float]) -> dict:
  """{'mean', 'lo', 'hi', 'std', 'n', 'values'}: Student-t 95 % interval of the mean (NaNs dropped)."""
  v = np.asarray([x for x in values if x is not None and math.isfinite(float(x))], np.float64)
  n = len(v)
  if n == 0:
    return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "std": float("nan"),
            "n": 0, "values": []}
  mean = float(v.mean())
  if n == 1:
    return {"mean": mean, "lo": float("nan"), "hi": float("nan"), "std": float("nan"), "n": 1,
            "values": v.tolist()}
  std = float(v.std(ddof=1))
  half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
  return {"mean": mean, "lo": mean - half, "hi": mean + half, "std": std, "n": n, "values": v.tolist()}


def cell(values: Sequence[float], digits: int = 3) -> str:
  """A table cell: 'mean [lo, hi]' (or just the mean for one seed)."""
  s = summarize(values)
  if s["n"] == 0:
    return "—"
  if s["n"] == 1:
    return f"{s['mean']:.{digits}f}"
  return f"{s['mean']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"


def verdict(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True) -> str:
  """'holds' if A beats B beyond the seed spread, 'does NOT hold' if B beats A beyond it,
  'inconclusive' otherwise (overlapping 95 % intervals, or fewer than 2 seeds on a side)."""
  sa, sb = summarize(a), summarize(b)
  if sa["n"] < 2 or sb["n"] < 2:
    return "inconclusive"
  if not higher_is_better:
    sa = {k: -sa[k] for k in ("lo", "hi")}
    sb = {k: -sb[k] for k in ("lo", "hi")}
    sa["lo"], sa["hi"] = sa["hi"], sa["lo"]
    sb["lo"], sb["hi"] = sb["hi"], sb["lo"]
  if sa["lo"] > sb["hi"]:
    return "holds"
  if sb["lo"] > sa["hi"]:
    return "does NOT hold"
  return "inconclusive"
