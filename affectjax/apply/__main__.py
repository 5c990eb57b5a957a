"""python -m affectjax.apply --workdir=RUN --input=FILE_OR_DIR --output=DIR [method flags]

Method flags:
  GANmut / GGANmut / StarGAN runs (one edit target, and/or --strip, --gamut):
    --emotion=happy [--intensity=0.7]   an emotion at an intensity in [0, 1] (default 1)
    --angle=RADIANS --rho=R             polar coordinates of the learned 2-D space
    --point=X,Y                         a point of the learned 2-D space
    --strip                             neutral -> each emotion in 11 steps (the run's figure)
    --gamut                             the face across the space (the run's figure)
  Rb-VAE / sRb-VAE runs: e and z codes; --style_from=IMAGE puts IMAGE's e on every input.
  triplet VAE runs: embeddings of landmark files; --neutral=FILE (M1/M2: the person's neutral face).
  LeVAsa / Vanilla VAE and dual-domain runs need no method flag.
Common: --step=N (default: the newest checkpoint), --seed=I (a K-seed run's seed),
--batch_size=32, --no_progress.
"""
from __future__ import annotations

import argparse
import sys


def _point(text: str):
  try:
    x, y = (float(v) for v in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r}: expected two numbers X,Y (e.g. -0.8,-0.5)") from None
  return (x, y)


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m affectjax.apply", description=__doc__.splitlines()[0],
                              epilog="\n".join(__doc__.splitlines()[2:]),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", required=True, help="a run directory (config.json, checkpoints/)")
  p.add_argument("--input", required=True, help="an image or landmark file, or a folder of them")
  p.add_argument("--output", required=True, help="folder for the outputs (created)")
  p.add_argument("--step", type=int, default=None)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--no_progress", action="store_true")
  p.add_argument("--emotion")
  p.add_argument("--intensity", type=float)
  p.add_argument("--angle", type=float, help="radians")
  p.add_argument("--rho", type=float)
  p.add_argument("--point", type=_point)
  p.add_argument("--strip", action="store_true")
  p.add_argument("--gamut", action="store_true")
  p.add_argument("--style_from")
  p.add_argument("--neutral")
  return p


def main(argv=None) -> int:
  a = parser().parse_args(argv)
  from affectjax.apply.core import Options, apply
  from affectjax.errors import UserError
  o = Options(emotion=a.emotion, intensity=a.intensity, angle=a.angle, rho=a.rho, point=a.point,
              strip=a.strip, gamut=a.gamut, style_from=a.style_from, neutral=a.neutral,
              batch_size=a.batch_size, progress=not a.no_progress)
  try:
    summary = apply(a.workdir, a.input, a.output, o, step=a.step, seed=a.seed)
  except UserError as e:
    print(f"affectjax: error: {e}", file=sys.stderr)
    return 1
  print(summary.line())
  return 0


if __name__ == "__main__":
  sys.exit(main())
