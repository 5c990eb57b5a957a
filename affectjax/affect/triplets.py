"""Triplets for the triplet VAE (triplet_vae.md Sec. IV-B, V-B): generation, weights, Eq. 12.

A triplet is (reference, positive, negative) indices: the positive is the face judged more similar
to the reference. Artificial triplets follow the paper's three rules on labels and intensities
(posed data, weight 1); crowd triplets simulate 5 annotators per triplet judging similarity by the
true action-unit intensities, their agreement (5-0, 4-1, 3-2) giving the reliability weight.
Host-side numpy; a JAX key (or an int seed) makes every draw deterministic.
"""
from __future__ import annotations

import jax
import numpy as np

__all__ = ["artificial_triplets", "crowd_triplets", "agreement_levels", "satisfied",
           "satisfied_fraction", "satisfied_by_reliability", "check_rules"]

RULES = ("same_class", "intensity", "neutral")


def _rng(key) -> np.random.Generator:
  """A numpy generator from a JAX PRNG key (or a plain int seed)."""
  if isinstance(key, (int, np.integer)):
    return np.random.default_rng(int(key))
  return np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))


def _permutations(rng, idx, n):
  """n indices: random permutations of `idx` back to back (each appears as evenly as possible)."""
  if n <= 0:
    return np.zeros(0, np.int64)
  reps = -(-n // len(idx))
  return np.concatenate([rng.permutation(idx) for _ in range(reps)])[:n]


def artificial_triplets(key, labels, intensities, n: int, neutral_label: int = 0, *,
                        rule_probs=None) -> np.ndarray:
  """n triplets int32 [n, 3] (ref, pos, neg) from labels and expression intensities (Sec. IV-B).

  The paper's rules, each a kind of triplet (ref of class c):
    same_class: pos of class c, neg of any other class (incl. neutral): "expressions from the same
                class are closer than from different classes";
    intensity:  pos and neg of class c != neutral with |I_pos - I_ref| < |I_neg - I_ref| strictly:
                "within the same class: the closer the degree of expression the smaller
                the distance";
    neutral:    c != neutral, pos neutral, neg of a class other than c and neutral: "a neutral
                expression is closer than a different class".
  References run through random permutations of the labelled points, so when n >= N every point
  with label >= 0 is in at least one triplet (Sec. IV-B): a point that can be no reference (e.g.
  the only member of its class) is put in as a negative or a positive instead. Each triplet's
  rule is drawn among those possible for its reference, uniformly or with `rule_probs` (3 weights
  in RULES order; the paper gives no mix; a rule with weight 0 is never used, so points that only
  it could place are left out). Labels < 0 are never used. Rows come out in random order.
  """
  labels = np.asarray(labels).astype(np.int64).reshape(-1)
  inten = np.asarray(intensities, np.float64).reshape(-1)
  if labels.shape != inten.shape:
    raise ValueError(f"labels {labels.shape} and intensities {inten.shape} differ in length")
  probs = np.ones(3) if rule_probs is None else np.asarray(rule_probs, np.float64)
  if probs.shape != (3,) or np.any(probs < 0) or probs.sum() <= 0:
    raise ValueError(f"rule_probs: expected 3 non-negative weights for {RULES}, got {rule_probs}")
  rng = _rng(key)
  valid = np.flatnonzero(labels >= 0)
  if len(valid) < 3:
    raise ValueError(f"artificial_triplets: need at least 3 labelled points, got {len(valid)}")
  classes = np.unique(labels[valid])
  members = {int(c): np.flatnonzero(labels == c) for c in classes}
  neutrals = members.get(neutral_label, np.zeros(0, np.int64))
  emotions = [int(c) for c in classes if c != neutral_label]

  def feasible(r):
    c = int(labels[r])
    ok = np.zeros(3, bool)
    ok[0] = len(members[c]) >= 2 and len(classes) >= 2
    if c != neutral_label:
      others = members[c][members[c] != r]
      d = np.abs(inten[others] - inten[r])
      ok[1] = len(others) >= 2 and d.min() < d.max()
      ok[2] = len(neutrals) > 0 and len(emotions) >= 2
    return ok & (probs > 0)

  ok = np.zeros((len(labels), 3), bool)
  for r in valid:
    ok[r] = feasible(r)

  def make(r, rule):
    c = int(labels[r])
    if rule == 0:
      same = members[c][members[c] != r]
      return r, rng.choice(same), rng.choice(valid[labels[valid] != c])
    if rule == 1:
      others = members[c][members[c] != r]
      d = np.abs(inten[others] - inten[r])
      pos = rng.choice(np.flatnonzero(d < d.max()))
      return r, others[pos], rng.choice(others[d > d[pos]])
    third = valid[(labels[valid] != c) & (labels[valid] != neutral_label)]
    return r, rng.choice(neutrals), rng.choice(third)

  def cover(r):
    """A triplet that holds r, which is no possible reference, as a positive or negative."""
    c = int(labels[r])
    hosts = valid[ok[valid, 0] & (labels[valid] != c)]
    if len(hosts):  # same_class with r as the other-class negative
      q = rng.choice(hosts)
      return q, rng.choice(members[int(labels[q])][members[int(labels[q])] != q]), r
    if c == neutral_label and ok[valid, 2].any():  # neutral rule with r as the positive
      q, _, neg = make(rng.choice(valid[ok[valid, 2]]), 2)
      return q, r, neg
    hosts = valid[ok[valid, 2] & (labels[valid] != c)] if c != neutral_label else valid[:0]
    if len(hosts):  # neutral rule with r as the other-class negative
      q = rng.choice(hosts)
      return q, rng.choice(neutrals), r
    return None

  placeable = valid[ok[valid].any(1)]
  if len(placeable) == 0:
    raise ValueError("artificial_triplets: no point can be the reference of an allowed rule")
  rows = [cover(r) for r in rng.permutation(valid[~ok[valid].any(1)])]
  rows = [row for row in rows if row is not None][:n]
  for r in _permutations(rng, placeable, n - len(rows)):
    p = np.where(ok[r], probs, 0.0)
    rows.append(make(r, rng.choice(3, p=p / p.sum())))
  return rng.permutation(np.asarray(rows, np.int64).reshape(-1, 3)).astype(np.int32)


def check_rules(triplets, labels, intensities, neutral_label: int = 0) -> np.ndarray:
  """bool [T]: whether each triplet obeys one of the paper's three rules (Sec. IV-B)."""
  t = np.asarray(triplets)
  lab = np.asarray(labels)[t]
  inten = np.asarray(intensities, np.float64)[t]
  r, p, q = lab[:, 0], lab[:, 1], lab[:, 2]
  distinct = (t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2])
  same_class = (p == r) & (q != r)
  intensity = ((p == r) & (q == r) & (r != neutral_label)
               & (np.abs(inten[:, 1] - inten[:, 0]) < np.abs(inten[:, 2] - inten[:, 0])))
  neutral = (r != neutral_label) & (p == neutral_label) & (q != r) & (q != neutral_label)
  return distinct & (same_class | intensity | neutral) & (lab >= 0).all(1)


def _distinct_rows(rng, slots):
  """Reshapes slots to [T, 3], then swaps entries between rows until no row repeats an index."""
  rows = slots.reshape(-1, 3).copy()

  def bad(i):
    x = rows[i]
    return x[0] == x[1] or x[0] == x[2] or x[1] == x[2]

  for _ in range(1000):
    todo = [i for i in range(len(rows)) if bad(i)]
    if not todo:
      return rows
    for i in todo:
      j, a, b = rng.integers(len(rows)), rng.integers(3), rng.integers(3)
      if i == j:
        continue
      before = bad(i) + bad(j)
      rows[i, a], rows[j, b] = rows[j, b], rows[i, a]
      if bad(i) + bad(j) >= before:  # keep only swaps that repair
        rows[i, a], rows[j, b] = rows[j, b], rows[i, a]
  raise ValueError("crowd_triplets: could not build triplets of three distinct images")


def crowd_triplets(key, au, n_per_image: int = 6, votes: int = 5, noise: float = 0.35, *,
                   return_votes: bool = False):
  """Simulated crowd-sourced triplets (Sec. IV-B): (triplets int32 [T, 3], weights float32 [T]).

  au: [N, A] true action-unit intensities, the "human-like representation" h of Sec. III-B.
  Each image fills n_per_image slots (T = ceil(N n_per_image / 3); the paper: each image in 6
  triplets); the first face of a triplet is the reference, the other two the choices. Each of the
  `votes` annotators picks the choice whose perceived AU distance to the reference is smaller,
  perceiving each distance with independent N(0, noise^2) error. The triplet is oriented so the
  majority's choice is the positive; the vote difference |a - b| (5, 3 or 1 for 5 votes) over
  `votes` is its weight: 1, 0.6, 0.2 (a unanimous triplet has weight 1, as the artificial ones,
  Sec. V-B). With return_votes, also the votes for the positive, int32 [T].
  The default noise 0.35 (AU-intensity units) gives, on the synthetic faces' AUs, about Table I's
  agreement split (35 % / 34 % / 31 % at vote difference 5 / 3 / 1).
  """
  if votes < 1 or votes % 2 == 0:
    raise ValueError(f"crowd_triplets: votes must be odd (no ties), got {votes}")
  au = np.asarray(au, np.float64)
  au = au.reshape(len(au), -1)
  n = len(au)
  if not np.all(np.isfinite(au)):
    raise ValueError("crowd_triplets: AU intensities must be finite (drop or fill unknown AUs)")
  if n < 3:
    raise ValueError(f"crowd_triplets: need at least 3 images, got {n}")
  rng = _rng(key)
  slots = _permutations(rng, np.arange(n), 3 * (-(-n * n_per_image // 3)))
  rows = _distinct_rows(rng, slots)
  ref, a, b = rows[:, 0], rows[:, 1], rows[:, 2]
  d_a = np.linalg.norm(au[ref] - au[a], axis=-1)
  d_b = np.linalg.norm(au[ref] - au[b], axis=-1)
  t = len(rows)
  seen_a = d_a[:, None] + noise * rng.standard_normal((t, votes))
  seen_b = d_b[:, None] + noise * rng.standard_normal((t, votes))
  for_a = np.sum(seen_a < seen_b, axis=1)
  a_wins = 2 * for_a > votes
  pos = np.where(a_wins, a, b)
  neg = np.where(a_wins, b, a)
  majority = np.where(a_wins, for_a, votes - for_a)
  weights = (2 * majority - votes) / votes  # vote difference 5/3/1 -> 1, 0.6, 0.2
  triplets = np.stack([ref, pos, neg], 1).astype(np.int32)
  if return_votes:
    return triplets, weights.astype(np.float32), majority.astype(np.int32)
  return triplets, weights.astype(np.float32)


def agreement_levels(weights, votes: int = 5) -> np.ndarray:
  """The vote difference (5, 3, 1 for 5 votes) of each triplet from its weight: int [T]."""
  return np.rint(np.asarray(weights, np.float64) * votes).astype(np.int64)


def satisfied(z, triplets, strict: bool = False) -> np.ndarray:
  """bool [T]: Eq. 12, ||z_ref - z_+|| <= ||z_ref - z_-|| (< with strict) per triplet."""
  z = np.asarray(z, np.float64)
  z = z.reshape(len(z), -1)
  t = np.asarray(triplets)
  d_pos = np.linalg.norm(z[t[:, 0]] - z[t[:, 1]], axis=-1)
  d_neg = np.linalg.norm(z[t[:, 0]] - z[t[:, 2]], axis=-1)
  return d_pos < d_neg if strict else d_pos <= d_neg


def satisfied_fraction(z, triplets, weights=None, strict: bool = False) -> float:
  """Fraction of satisfied triplets (Eq. 12) of embeddings z [N, ...]; weighted by `weights`."""
  sat = satisfied(z, triplets, strict)
  if weights is None:
    return float(np.mean(sat))
  w = np.asarray(weights, np.float64)
  return float(np.sum(w * sat) / np.sum(w))


def satisfied_by_reliability(z, triplets, weights, votes: int = 5, strict: bool = False) -> dict:
  """{vote difference: fraction satisfied} for 5, 3, 1: Table III's columns (NaN: none)."""
  sat = satisfied(z, triplets, strict)
  level = agreement_levels(weights, votes)
  return {d: float(np.mean(sat[level == d])) if np.any(level == d) else float("nan")
          for d in range(votes, 0, -2)}
