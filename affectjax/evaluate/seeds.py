"""Results over seeds: mean with a 95 % interval, and verdicts a reviewer accepts.

A claim "A beats B" is a two-sided t-test over seeds -- paired when both arms were trained on
the same seeds and data order, Welch otherwise -- Holm-corrected across one paper's claims; it
holds (or does NOT hold) at adjusted p < 0.05 and is inconclusive otherwise, with the number of
seeds a power calculation at the observed effect says would decide it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

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


ALPHA = 0.05  # family-wise error rate of one paper's claims (Holm)
POWER = 0.8  # the power a "seeds needed" estimate asks for


@dataclasses.dataclass
class Comparison:
  """A claim "A beats B" over seeds: the difference of means A - B with its 95 % interval, the
  two-sided test's p, the Holm-adjusted p across the claims it was judged with, and the verdict."""
  text: str
  diff: float
  lo: float
  hi: float
  p: float
  n_a: int
  n_b: int
  test: str  # 'paired t' | 'Welch t' | 'none' (fewer than 2 values on a side)
  higher_is_better: bool = True
  p_holm: float = float("nan")
  verdict: str = "inconclusive"
  seeds_needed: Optional[int] = None  # per arm, for POWER at the observed effect and the claim's
  # Holm level (set when judged, for an inconclusive claim); None: > 100
  effect: float = float("nan")  # the standardised effect (Cohen's d; of the differences if paired)
  paper: str = ""  # what the paper reports for this claim (its numbers), for the results page
  mean_a: float = float("nan")  # each arm's mean over its seeds (the test's values)
  mean_b: float = float("nan")
  token: str = ""  # while the paper's other claims are still to come: line() is this placeholder

  def record(self) -> dict:
    """The claim as JSON-ready fields, with its verdict line (NaN as None)."""
    out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
           for k, v in dataclasses.asdict(self).items()}
    return {**out, "line": self.line()}

  def line(self, digits: int = 4) -> str:
    """'verdict: A - B = d [lo, hi], paired t p = ... (Holm ...), n = 3 / 3[; ...seeds...]'."""
    if self.token:
      return self.token
    if self.test == "none":
      return f"{self.verdict} (n = {self.n_a} / {self.n_b}: a test needs 2 seeds per arm)"
    f = lambda x: f"{x:+.{digits}f}"
    out = (f"{self.verdict}: A - B = {f(self.diff)} [{f(self.lo)}, {f(self.hi)}], {self.test} "
           f"p = {self.p:.3g} (Holm {self.p_holm:.3g}), n = {self.n_a} / {self.n_b}")
    if self.verdict == "inconclusive":
      need = (f"about {self.seeds_needed}" if self.seeds_needed else "more than 100")
      out += f"; {need} seeds per arm would decide it at {POWER:.0%} power at its Holm level"
    return out


def _finite(values) -> np.ndarray:
  return np.asarray([x for x in values if x is not None and math.isfinite(float(x))], np.float64)


def _seeds_needed(effect: float, paired: bool, alpha: float = ALPHA) -> Optional[int]:
  """Smallest n (pairs, or seeds per arm) at which the two-sided test at level alpha has POWER
  against the standardised effect (noncentral t); None beyond 100."""
  if not math.isfinite(effect) or effect == 0:
    return None
  for n in range(2, 101):
    df, nc = (n - 1, abs(effect) * math.sqrt(n)) if paired else (2 * n - 2, abs(effect) * math.sqrt(n / 2))
    crit = stats.t.ppf(1 - alpha / 2, df)
    if stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc) >= POWER:
      return n
  return None


def compare(text: str, a: Sequence[float], b: Sequence[float], *, paired: bool,
            higher_is_better: bool = True, paper: str = "") -> Comparison:
  """A two-sided t-test of A against B over seeds. paired: a[i] and b[i] come from the same seed
  (same root key and data order), so the test is on the per-seed differences of the first
  min(len) seeds with both values finite; otherwise Welch's unequal-variance test. paper: what
  the paper reports for the claim (shown beside ours on the results page)."""
  if paired:  # the means of the seeds the test pairs (an arm may hold more: --only added them)
    a, b = paired_arms(a, b)
  means = dict(paper=paper, mean_a=summarize(a)["mean"], mean_b=summarize(b)["mean"])
  return dataclasses.replace(_compare(text, a, b, paired=paired, higher_is_better=higher_is_better),
                             **means)


def paired_arms(a, b) -> tuple[list, list]:
  """A's and B's values over the seeds a paired test compares (see _pairs), e.g. for the cells
  printed beside its line."""
  pairs = _pairs(a, b)
  return [x for x, _ in pairs], [y for _, y in pairs]


def _pairs(a, b) -> list[tuple]:
  """(a[i], b[i]) for the first min(len) seeds where both are finite."""
  return [(x, y) for x, y in zip(a, b) if x is not None and y is not None
          and math.isfinite(float(x)) and math.isfinite(float(y))]


def _compare(text, a, b, *, paired, higher_is_better) -> Comparison:
  if paired:
    pairs = _pairs(a, b)
    d = np.asarray([x - y for x, y in pairs], np.float64)
    n_a = n_b = n = len(d)
    if n < 2:
      return Comparison(text, float(d.mean()) if n else math.nan, math.nan, math.nan, math.nan,
                        n, n, "none", higher_is_better)
    diff, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
      p = 1.0 if diff == 0 else 0.0
      return Comparison(text, diff, diff, diff, p, n, n, "paired t", higher_is_better)
    se, df = sd / math.sqrt(n), n - 1
    p = float(stats.ttest_rel(*zip(*pairs)).pvalue)
    effect = diff / sd
  else:
    va, vb = _finite(a), _finite(b)
    n_a, n_b = len(va), len(vb)
    if n_a < 2 or n_b < 2:
      diff = float(va.mean() - vb.mean()) if n_a and n_b else math.nan
      return Comparison(text, diff, math.nan, math.nan, math.nan, n_a, n_b, "none", higher_is_better)
    diff = float(va.mean() - vb.mean())
    ra, rb = va.var(ddof=1) / n_a, vb.var(ddof=1) / n_b
    if ra + rb == 0:
      p = 1.0 if diff == 0 else 0.0
      return Comparison(text, diff, diff, diff, p, n_a, n_b, "Welch t", higher_is_better)
    se = math.sqrt(ra + rb)
    df = (ra + rb) ** 2 / (ra ** 2 / (n_a - 1) + rb ** 2 / (n_b - 1))  # Welch-Satterthwaite
    p = float(stats.ttest_ind(va, vb, equal_var=False).pvalue)
    effect = diff / math.sqrt((va.var(ddof=1) + vb.var(ddof=1)) / 2)
  half = float(stats.t.ppf(0.975, df)) * se
  return Comparison(text, diff, diff - half, diff + half, p, n_a, n_b,
                    "paired t" if paired else "Welch t", higher_is_better, effect=effect)


def _step_down_order(pvalues: Sequence[float]) -> list[int]:
  """The indices of the finite p-values, smallest first: Holm's order (rank r is tested at
  ALPHA / (m - r))."""
  return sorted((i for i, p in enumerate(pvalues) if math.isfinite(p)), key=lambda i: pvalues[i])


def holm(pvalues: Sequence[float]) -> list[float]:
  """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
  order = _step_down_order(pvalues)
  out, running, m = [float("nan")] * len(pvalues), 0.0, len(order)
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (m - rank) * pvalues[i]))
    out[i] = running
  return out


# Every claim judged in this process, in order: what affectjax.experiment writes to claims.json
JUDGED: list[Comparison] = []
# Set by affectjax.experiment.run: a paper's tables judge several groups of claims, and Holm's
# family is all of them, so judge() defers (each line a placeholder) until resolve() sees the last
PAPER_WIDE = False


def _verdicts(comparisons: Sequence[Comparison]) -> list[Comparison]:
  pvalues = [c.p for c in comparisons]
  adjusted, order = holm(pvalues), _step_down_order(pvalues)
  level = {i: ALPHA / (len(order) - rank) for rank, i in enumerate(order)}  # each raw p's Holm level
  out = []
  for i, (c, p) in enumerate(zip(comparisons, adjusted)):
    verdict, need = "inconclusive", None
    if math.isfinite(p) and p < ALPHA and c.diff != 0:
      verdict = "holds" if (c.diff > 0) == c.higher_is_better else "does NOT hold"
    elif i in level:  # seeds that would decide it at its Holm level, not at the unadjusted ALPHA
      need = _seeds_needed(c.effect, c.test == "paired t", level[i])
    out.append(dataclasses.replace(c, p_holm=p, verdict=verdict, seeds_needed=need, token=""))
  return out


def judge(comparisons: Sequence[Comparison]) -> list[Comparison]:
  """The verdicts of one paper's claims, Holm-corrected together: 'holds' when A beats B at
  adjusted p < ALPHA, 'does NOT hold' when B beats A there, 'inconclusive' otherwise. Under
  PAPER_WIDE the verdicts are pending (line() a placeholder) until resolve()."""
  if PAPER_WIDE:
    out = [dataclasses.replace(c, verdict="pending", token=f"[[claim {len(JUDGED) + i}]]")
           for i, c in enumerate(comparisons)]
  else:
    out = _verdicts(comparisons)
  JUDGED.extend(out)
  return out


def resolve(text: str) -> str:
  """Judges every claim in JUDGED together (one Holm family: the paper's) and writes each verdict
  line where its placeholder stands in `text`."""
  final = _verdicts(JUDGED)
  for pending, c in zip(JUDGED, final):
    if pending.token:
      text = text.replace(pending.token, c.line())
  JUDGED[:] = final
  return text


class Claims:
  """One paper's claims, collected then judged together (Holm across them)."""

  def __init__(self):
    self._items: list[Comparison] = []

  def add(self, text: str, a: Sequence[float], b: Sequence[float], *, paired: bool,
          higher_is_better: bool = True, paper: str = "") -> None:
    self._items.append(compare(text, a, b, paired=paired, higher_is_better=higher_is_better,
                               paper=paper))

  def judged(self) -> list[Comparison]:
    return judge(self._items)

  HEADER = ("Verdicts: a two-sided t-test over seeds (paired when both arms share seeds and data "
            "order, Welch otherwise), Holm-corrected across all of the paper's claims that this command judges, "
            "at 0.05; A - B with its 95 % interval.")
