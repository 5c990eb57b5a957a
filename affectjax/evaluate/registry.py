"""Evaluators as a registry: config.evals = {name: {type, feature, target, ...}} adds evaluations
of a method's representation to its own (big_vision's style). Each is computed from one cached
prediction of `Method.represent` per split (jitted once per method) and reports
eval/<name>/<metric>. Fit, select, score: a probe is fitted on the fit split (Splits.probe_fit
when the data has one, else the training split), its regularisation chosen on the fit split's
selection rows (affectjax.evaluate.probes; whole people when the data has identities), and scored
on the test split.

  c.evals.expr = ml_collections.ConfigDict(dict(type="linear_probe", feature="mu", target="label"))
  c.evals.va = ml_collections.ConfigDict(dict(type="ridge_r2", feature="mu", target="va"))

Types (EVALUATORS; `register` adds one: fn(fit, score, spec, seed) -> {metric: float}, where fit
and score are {'x': features [N, d], field: [N, ...] of the split}):
  linear_probe      logistic regression (kind='svm': a linear SVM) of `target` (class labels):
                    accuracy, mean_recall, C
  ridge_r2          ridge regression of `target` (its columns): r2 (mean over columns), alpha of
                    each column
  identity_leakage  a linear identity classifier over the scoring split's faces (alternate faces
                    of each person): accuracy, chance
Optional fields: max_fit (rows of the fit split read; default 5000), kind, standardize.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from affectjax.config import ConfigError
from affectjax.evaluate import probes
from affectjax.evaluate.inference import batched

EVALUATORS: dict[str, Callable] = {}
TARGETLESS = {"identity_leakage"}  # types that need no `target` field
DEFAULT_MAX_FIT = 5000


def register(name: str, *, needs_target: bool = True):
  """Decorator: fn(fit, score, spec, seed) -> {metric: float} as evaluator type `name`."""
  def wrap(fn):
    EVALUATORS[name] = fn
    if not needs_target:
      TARGETLESS.add(name)
    return fn
  return wrap


@register("linear_probe")
def linear_probe(fit, score, spec, seed):
  r = probes.linear_classifier((fit["x"], fit[spec.target]), (score["x"], score[spec.target]),
                               people=fit.get("identity"), kind=spec.get("kind", "logistic"),
                               standardize=spec.get("standardize", True), seed=seed)
  return {"accuracy": r["accuracy"], "mean_recall": r["mean_recall"], "C": r["C"]}


@register("ridge_r2")
def ridge_r2(fit, score, spec, seed):
  del seed
  r = probes.ridge_r2((fit["x"], fit[spec.target]), (score["x"], score[spec.target]),
                      people=fit.get("identity"))
  return {"r2": r["mean"], **{f"alpha_{i}": float(a) for i, a in enumerate(np.atleast_1d(r["alpha"]))}}


@register("identity_leakage", needs_target=False)
def identity_leakage(fit, score, spec, seed):
  del fit, spec
  r = probes.identity_leakage(score["x"], score["identity"], seed=seed)
  return {"accuracy": r["accuracy"], "chance": r["chance"]}


def check(evals, method_name: str, has_represent: bool) -> None:
  """A config.evals entry with an unknown type or without its fields, or on a method without a
  representation, is one ConfigError line before anything is trained."""
  for name, spec in (evals or {}).items():
    where = f"config.evals.{name}"
    if not has_represent:
      raise ConfigError(f"{where}: {method_name} has no representation to evaluate (Method.represent)")
    if spec.get("type") not in EVALUATORS:
      raise ConfigError(f"{where}.type={spec.get('type')!r}: expected one of "
                        f"{', '.join(repr(t) for t in EVALUATORS)}")
    needed = ("feature",) + (() if spec.type in TARGETLESS else ("target",))
    missing = [f for f in needed if not spec.get(f)]
    if missing:
      raise ConfigError(f"{where}: needs {' and '.join(missing)} (e.g. feature='mu', target='label')")


def predictions(represent, state, split, fields, batch_size: int, limit=None) -> dict:
  """{feature: [N, d]} of a jitted `represent` over a split, with the split's `fields` beside
  them (as 'field:<name>')."""
  def one(batch):
    feats = represent(state, {k: jnp.asarray(v) for k, v in batch.items()})
    out = {k: np.asarray(v).reshape(len(v), -1) for k, v in feats.items()}
    out.update({f"field:{k}": batch[k] for k in fields if k in batch})
    return out
  return batched(one, split, batch_size, limit=limit)


def evaluate(evals, represent, state, data, *, batch_size: int, seed: int) -> dict:
  """{'<name>/<metric>': value} of every config.evals entry; each split predicted once by the
  jitted `represent`."""
  if not evals:
    return {}
  fields = sorted({s.get("target") for s in evals.values() if s.get("target")} | {"identity"})
  fit_split = data.probe_fit if getattr(data, "probe_fit", None) is not None else data.train
  max_fit = max(int(s.get("max_fit", DEFAULT_MAX_FIT)) for s in evals.values())
  cache = {"fit": predictions(represent, state, fit_split, fields, batch_size, limit=max_fit),
           "score": predictions(represent, state, data.test, fields, batch_size)}
  out = {}
  for name, spec in evals.items():
    sets = {}
    for role, pred in cache.items():
      if spec.feature not in pred:
        features = sorted(k for k in pred if not k.startswith("field:"))
        raise ConfigError(f"config.evals.{name}.feature={spec.feature!r}: the method represents "
                          f"{', '.join(features)}")
      n = min(len(pred[spec.feature]), int(spec.get("max_fit", DEFAULT_MAX_FIT))) if role == "fit" \
          else len(pred[spec.feature])
      sets[role] = {"x": pred[spec.feature][:n],
                    **{k[len("field:"):]: v[:n] for k, v in pred.items() if k.startswith("field:")}}
    target = spec.get("target")
    if target and target not in sets["fit"]:
      raise ConfigError(f"config.evals.{name}.target={target!r}: the data has no such field")
    out.update({f"{name}/{k}": float(v) for k, v in EVALUATORS[spec.type](
        sets["fit"], sets["score"], spec, seed).items()})
  return out


def with_evals(method, config):
  """`method` whose evaluate also runs config.evals (unchanged when there are none); its
  represent is jitted here, once, for every evaluation of the run."""
  evals = config.get("evals")
  if not evals:
    return method
  check(evals, config.method, method.represent is not None)
  own, represent = method.evaluate, jax.jit(method.represent)

  def evaluate_all(state, data, workdir):
    out = dict(own(state, data, workdir)) if own is not None else {}
    out.update(evaluate(evals, represent, state, data, seed=config.seed,
                        batch_size=config.get("eval", {}).get("batch_size", 256)))
    return out
  return dataclasses.replace(method, evaluate=evaluate_all)
