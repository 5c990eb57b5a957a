"""Builds (or opens) a real dataset from your copy and prints a one-line JSON summary.

  python tools/verify_dataset.py --dataset=affectnet --manual_dir=/data/AffectNet \
      [--tfds_dir=/tmp/tfds] [--image_size=64] [--num_classes=8] [--options='{"keep_none": true}']

Prints: kept examples per split, skipped rows per reason, adjusted rows per reason, label
histogram and VA range per split. Bad input (a missing manual_dir or file, an empty, binary or
garbled index file, no usable rows, an unknown option) is one line, `affectjax: error: ...` (exit 1).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys


def summarize(splits) -> dict:
  md = splits.metadata
  out = {"dataset": md["name"], "prepared_dir": md.get("prepared_dir", ""),
         "kept": {"train": len(splits.train), "test": len(splits.test)}}
  report = md.get("report", {})
  for key in ("skipped", "adjusted", "label_histogram", "va_range"):
    out[key] = {s: report[s][key] for s in ("train", "test") if s in report}
  out["skipped_before_split"] = md.get("skipped_before_split", {})
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dataset", required=True)
  p.add_argument("--manual_dir", default="")
  p.add_argument("--tfds_dir", default="")
  p.add_argument("--image_size", type=int, default=64)
  p.add_argument("--num_classes", type=int, default=8)
  p.add_argument("--test_fraction", type=float, default=0.2)
  p.add_argument("--options", default="{}", help="builder_options as JSON")
  a = p.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
  import ml_collections
  from affectjax.data import builders
  from affectjax.errors import UserError
  data = ml_collections.ConfigDict({
      "name": a.dataset, "manual_dir": a.manual_dir, "tfds_dir": a.tfds_dir, "cache_dir": "",
      "image_size": a.image_size, "num_classes": a.num_classes, "test_fraction": a.test_fraction,
      "builder_options": a.options})  # a JSON string: base.given_options parses and checks it
  try:
    with contextlib.redirect_stdout(sys.stderr):  # TFDS progress text: stdout keeps the JSON line only
      splits = builders.load_splits(data)
  except UserError as e:
    print(f"affectjax: error: {e}", file=sys.stderr)
    return 1
  print(json.dumps(summarize(splits), sort_keys=True))
  return 0


if __name__ == "__main__":
  sys.exit(main())
