"""docs/results.md: the five papers' claims beside ours, from the experiments' run directories.

  python experiments/results.py --root=runs/results [--train] [--papers=ganmut,levasa]
      [--out=docs/results.md]

For each paper, root/<paper>/ is the workdir of experiments/<paper>.py. With --train, each
experiment is first run there with its CPU defaults (COMMANDS below; finished runs are read back,
interrupted ones resume from their checkpoints, so a long campaign can take several sittings).
Then every experiment that has written claims.json (affectjax.experiment) gets its section: the
command that produced it, its runs (seeds, steps, wall time), each claim with the paper's number,
our two arms and the verdict line (difference, 95 % interval, p, Holm p, n per arm), and its
figures. The page's records go beside it in docs/results/<paper>/ (claims.json, tables.md and the
figures, and each run's results.json: its per-seed metrics and config, never checkpoints), so
`--root=docs/results` regenerates the same page from them. Because a finished run is read back
from its results.json, a later sitting on another machine continues a campaign from the records:
`cp -r docs/results/<paper> runs/results/` and run the experiment's command; only the runs that
have no record train, and a larger --seeds adds seeds to the finished ones. A figure drawn from
a run's own files (LeVAsa's combined figures, the triplet VAE's PCA plots) is redrawn only when
those files exist; otherwise the page keeps the copy it has.
"""
import json
import os
import shutil
import subprocess
import sys

from absl import app, flags

from affectjax import errors, experiment, runner

DEFAULT_ROOT = "runs/results"
_ROOT = flags.DEFINE_string("root", DEFAULT_ROOT, "Where each experiment's workdir is (root/<paper>).")
_OUT = flags.DEFINE_string("out", "docs/results.md", "The page; its records go in <dir of out>/results/.")
_TRAIN = flags.DEFINE_bool("train", False, "Run each experiment's CPU-default command first.")
_PAPERS = flags.DEFINE_list("papers", [], "Only these papers (default: all five).")

# paper -> (title, paper file, the experiment's CPU-default arguments)
PAPERS = {
    "levasa": ("LeVAsa (Nath et al., CODS-COMAD 2021)", "levasa.md", ["--seeds=3"]),
    "ganmut": ("GANmut (d'Apolito et al., CVPR 2021)", "ganmut.md", ["--size=small", "--seeds=3"]),
    # 5,000 of the paper's 100,000 steps: 3 seeds at 46 ms a step (tools/bench.py, 2-core CPU)
    # make the paper's length ~77 min per model, 6 models; 5,000 is ~4 min each.
    "triplet_vae": ("The triplet VAE (M1/M2)", "triplet_vae.md", ["--seeds=3", "--steps=5000"]),
    "dual_domain": ("Dual-domain affect fusion", "dual_domain_fusion.md", ["--size=small", "--seeds=3"]),
    "rbvae": ("Rb-VAE / sRb-VAE", "rbvae.md", ["--size=small", "--seeds=3"]),
}


def command(paper: str, root: str) -> list[str]:
  return [sys.executable, os.path.join("experiments", f"{paper}.py"),
          f"--workdir={os.path.join(root, paper)}", *PAPERS[paper][2]]


def _fmt(x, digits=4) -> str:
  return "—" if x is None else f"{x:.{digits}g}"


def _duration(seconds) -> str:
  if seconds is None:
    return "—"
  return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def section(paper: str, record: dict, figures: list[str]) -> str:
  """One paper's part of the page from its claims.json (figures: paths relative to the page)."""
  title, source, _ = PAPERS[paper]
  runs, claims = record["runs"], record["claims"]
  counts = {c["verdict"]: 0 for c in claims}
  for c in claims:
    counts[c["verdict"]] += 1
  out = [f"## {title}\n",
         f"Paper: `../shared/papers/{source}`. Produced by `{record['command']}`; every table it "
         f"wrote: [results/{paper}/tables.md](results/{paper}/tables.md). Verdicts: "
         + (", ".join(f"{n} {v}" for v, n in counts.items()) or "none") + ".\n",
         "| run | seeds | steps | wall time | code |", "|---|---|---|---|---|"]
  out += [f"| {r['name']} | {r['num_seeds']} | {r['num_steps'] or '—'} | "
          f"{_duration(r['wall_s'])}{' (trained outside the runner)' if r['adopted'] else ''} | "
          f"{', '.join(r.get('code') or []) or '—'} |" for r in runs]
  total = _total_wall(runs)
  out += [f"\nTraining and evaluation wall time in all: {_duration(total)}.\n",
          "| claim | the paper | ours: A / B (means over seeds) | verdict (A - B [95 % interval], test, p, Holm p, n per arm) |",
          "|---|---|---|---|"]
  out += [f"| {c['text']} | {c['paper'] or '—'} | {_fmt(c['mean_a'])} / {_fmt(c['mean_b'])} | "
          f"{c['line']} |" for c in claims]
  if figures:
    out += ["\nFigures (the first seed of each run):\n"]
    out += [f"![{f}]({f})" for f in figures]
  return "\n".join(out) + "\n"


def _total_wall(runs) -> float:
  return sum(r["wall_s"] or 0 for r in runs)


def glance(rows: list[tuple[str, dict, int]]) -> str:
  """The page's first table: one line per paper (title, claims.json record, run records kept)."""
  out = ["| paper | claims | holds | does NOT hold | inconclusive | seeds per run | wall time | run records |",
         "|---|---|---|---|---|---|---|---|"]
  for title, record, kept in rows:
    verdicts = [c["verdict"] for c in record["claims"]]
    seeds = sorted({r["num_seeds"] for r in record["runs"]})
    span = "—" if not seeds else f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    wall = _duration(_total_wall(record["runs"]))
    # without results.json a section is re-tabulated from claims.json but seeds cannot be added
    kept_text = f"{kept} of {len(record['runs'])}" if kept else "none (claims.json only)"
    out.append(f"| {title.split(' (')[0]} | {len(verdicts)} | {verdicts.count('holds')} | "
               f"{verdicts.count('does NOT hold')} | {verdicts.count('inconclusive')} | {span} | "
               f"{wall} | {kept_text} |")
  return "\n".join(out) + "\n"


def _copy(src: str, dst: str) -> None:
  if os.path.abspath(src) != os.path.abspath(dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)


FIGURE_WIDTH = 900  # px: the page's copies, so a figure grid costs hundreds of kB in git, not MB


def _copy_figure(src: str, dst: str) -> None:
  """A copy of a PNG for the page: at most FIGURE_WIDTH wide, 256 colours (the run keeps the original)."""
  from PIL import Image
  if os.path.abspath(src) == os.path.abspath(dst):
    return
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  with Image.open(src) as im:
    if im.mode == "P" and im.width <= FIGURE_WIDTH:  # already a page copy: the same bytes, no churn
      shutil.copyfile(src, dst)
      return
    im = im.convert("RGB")
    if im.width > FIGURE_WIDTH:
      im = im.resize((FIGURE_WIDTH, round(im.height * FIGURE_WIDTH / im.width)), Image.LANCZOS)
    im.quantize(256).save(dst, optimize=True)


def write_page(root: str, out: str, papers: list[str]) -> str:
  """Writes the page and its records (out's directory / results / <paper>); returns the page."""
  records_dir = os.path.join(os.path.dirname(os.path.abspath(out)), "results")
  parts = ["# Results: the five papers' claims on the synthetic faces\n",
           "Generated by `python experiments/results.py` from the experiments' run directories; do "
           "not edit by hand. Each claim is a two-sided t-test over seeds (paired: both arms share "
           "seeds and data order; Welch otherwise), Holm-corrected across all the claims of its "
           "paper; 'holds' / 'does NOT hold' at corrected p < 0.05, otherwise "
           "'inconclusive' with the seeds per arm a power calculation at the observed effect "
           "would need (at the claim's Holm level where the line says so; records written "
           "before that change used 0.05). 'The paper' is what the paper reports for the claim, "
           "on its real data; ours are measured on affectjax's synthetic faces at CPU budgets "
           "(steps below), so they test whether the method's mechanism shows up, not the paper's numbers. "
           "Each paper's folder in docs/results/ keeps its runs' results.json (per-seed metrics and "
           "config): copied into a root, the experiment's command re-tabulates them, trains the runs "
           "that are missing and, with a larger --seeds, adds seeds to the finished ones (LeVAsa's, "
           "Rb-VAE's and the triplet VAE's --only=<models>, dual-domain's --train_only=<runs>, add "
           "them to those alone: the others are read with the seeds they hold, and a claim pairs its "
           "arms over the seeds both hold, as its n says). "
           "When an evaluation changes after training, --rescore=<runs> evaluates finished runs "
           "again from their checkpoints (kept on the machine that trained them, not in "
           "docs/results/), and their records say when. A run's code is the commit that trained each "
           "of its seed blocks ('+dirty': with uncommitted edits to affectjax/ or experiments/; "
           "'rescored at': the commit that evaluated it again; '—': trained before records kept "
           "it).\n"]
  missing, rows = [], []
  for paper in papers:
    d = os.path.join(root, paper)
    path = os.path.join(d, "claims.json")
    if not os.path.exists(path):
      missing.append(paper)
      continue
    with open(path) as f:
      record = json.load(f)
    dest = os.path.join(records_dir, paper)
    _copy(path, os.path.join(dest, "claims.json"))
    tables = os.path.join(d, record["tables"])
    if not os.path.exists(tables):  # a root of page records: their copy is always tables.md
      tables = os.path.join(d, "tables.md")
    _copy(tables, os.path.join(dest, "tables.md"))
    figures = []
    for fig in record["figures"]:
      target = os.path.join(dest, fig)
      if os.path.exists(os.path.join(d, fig)):
        _copy_figure(os.path.join(d, fig), target)
        figures.append(os.path.relpath(target, os.path.dirname(os.path.abspath(out))))
    # What the tables read (each run's results.json, ...): a later sitting continues from them.
    # Older claims.json files lack the list; their runs' results.json are what exists of it.
    run_records = 0
    for rel in record.get("records") or experiment.records(d):
      if os.path.exists(os.path.join(d, rel)):
        _copy(os.path.join(d, rel), os.path.join(dest, rel))
        run_records += os.path.basename(rel) == runner.RESULTS
    parts.append(section(paper, record, figures))
    rows.append((PAPERS[paper][0], record, run_records))
  if missing:  # the commands as a user would type them in a checkout (root: this page's machine)
    parts.append("## Not run yet\n\n" + "\n".join(
        f"- {PAPERS[p][0]}: `{' '.join(['python'] + command(p, DEFAULT_ROOT)[1:])}` has not "
        f"finished here (no {os.path.join(p, 'claims.json')} under the page's --root)."
        for p in missing) + "\n")
  if rows:
    parts.insert(2, "At a glance (run records: the runs whose results.json the page keeps, so seeds can be "
                    "added to them):\n\n" + glance(rows))
  page = "\n".join(parts)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, "w") as f:
    f.write(page)
  return page


def main(argv):
  del argv
  papers = _PAPERS.value or list(PAPERS)
  unknown = [p for p in papers if p not in PAPERS]
  if unknown:
    raise errors.UserError(f"--papers: unknown {', '.join(unknown)}; expected some of {', '.join(PAPERS)}")
  if _TRAIN.value:
    for paper in papers:
      print(f"=== {paper}: {' '.join(command(paper, _ROOT.value)[1:])}", flush=True)
      subprocess.run(command(paper, _ROOT.value), check=True)
  write_page(_ROOT.value, _OUT.value, papers)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(errors.one_line(main))
