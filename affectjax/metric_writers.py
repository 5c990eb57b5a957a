"""Metric sinks: metrics.jsonl in the workdir (always) and TensorBoard event files."""
from __future__ import annotations

import json
import logging
import math
import os

from affectjax import workdir as workdir_lib


class JsonlWriter:
  """Appends one JSON object per write to workdir/metrics.jsonl."""

  def __init__(self, workdir: str, resume_step: int = 0):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._truncate_after(resume_step)

  def _truncate_after(self, step: int):
    # A resumed run re-does the steps after its checkpoint: drop their stale lines first. A line
    # that is not JSON (torn by a kill mid-write) is dropped too, kept in metrics.jsonl.torn and
    # reported; the file is replaced atomically, so a kill here loses nothing.
    if not os.path.exists(self.path):
      return
    kept, torn = [], []
    with open(self.path, "rb") as f:
      for number, raw in enumerate(f, 1):
        if not raw.strip():
          continue
        try:
          row = json.loads(raw)
        except ValueError:
          torn.append((number, raw))
          continue
        if row.get("step", 0) <= step:
          kept.append(raw if raw.endswith(b"\n") else raw + b"\n")
    if torn:
      with open(self.path + ".torn", "ab") as f:
        f.writelines(raw if raw.endswith(b"\n") else raw + b"\n" for _, raw in torn)
      logging.getLogger("affectjax").warning(
          "%s: dropped %d line(s) that are not JSON (line %s; a run killed mid-write), kept in %s",
          self.path, len(torn), ", ".join(str(n) for n, _ in torn), self.path + ".torn")
    workdir_lib.write_atomic(self.path, b"".join(kept))

  def write(self, step: int, metrics: dict):
    row = {"step": int(step)}
    row.update({k: (float(v) if math.isfinite(float(v)) else str(float(v))) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")  # one write of one line: a kill tears at most this line


class TensorBoardWriter:
  """Scalar summaries under workdir/tensorboard (TensorFlow imported lazily, CPU only).

  Without TensorFlow it writes nothing, after a one-line warning (metrics.jsonl has everything).
  """

  def __init__(self, workdir: str):
    try:
      import tensorflow as tf
    except ImportError:
      logging.getLogger("affectjax").warning(
          "TensorBoard summaries skipped: tensorflow is not installed (metrics.jsonl has them all)")
      self._writer = None
      return
    self._tf = tf
    self._writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, metrics: dict):
    if self._writer is None:
      return
    with self._writer.as_default(step=int(step)):
      for k, v in metrics.items():
        self._tf.summary.scalar(k, float(v))
    self._writer.flush()


class MultiWriter:
  def __init__(self, writers):
    self.writers = list(writers)

  def write(self, step: int, metrics: dict):
    if metrics:
      for w in self.writers:
        w.write(step, metrics)
