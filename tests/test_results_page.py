"""experiments/results.py: docs/results.md from the experiments' claims.json, every verdict line
with its difference, interval, p and n; the records it copies regenerate the same page."""
import functools
import importlib.util
import json
import os

from affectjax.evaluate import seeds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def _results():
  spec = importlib.util.spec_from_file_location("exp_results", os.path.join(REPO, "experiments", "results.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _workdir(root):
  d = root / "ganmut"
  (d / "run" / "seed_0").mkdir(parents=True)
  from PIL import Image
  import numpy as np
  pixels = np.full((600, 1800, 3), (200, 40, 40), np.uint8)
  pixels[:100] = np.random.default_rng(0).integers(0, 256, (100, 1800, 3))  # many colours: quantised
  Image.fromarray(pixels).save(d / "run" / "seed_0" / "space.png")
  (d / "table1.md").write_text("# tables\n")  # named as Rb-VAE's: the page's copy is tables.md
  (d / "run" / "results.json").write_text(json.dumps({"name": "run", "num_seeds": 3, "wall_s": 600.0,
                                                      "per_seed": [{"eval/x": 1.0}] * 3}))
  judged = seeds.judge([seeds.compare("A beats B", [1.0, 1.25, 1.1], [0.5, 0.7, 0.6], paired=True,
                                      paper="Table 1: 0.26 vs 0.43"),
                        seeds.compare("C beats D", [1.0, 2.0], [1.5, 1.4], paired=True)])
  record = {"command": "python experiments/ganmut.py --workdir=x", "tables": "table1.md",
            "claims": [c.record() for c in judged], "figures": ["run/seed_0/space.png"],
            "runs": [{"name": "run", "num_seeds": 3, "wall_s": 600.0, "num_steps": 1500, "adopted": False,
                      "code": ["abc1234", "rescored at def5678+dirty"]}]}
  (d / "claims.json").write_text(json.dumps(record))
  return judged


def test_the_page_carries_every_verdict_and_regenerates_from_its_records(tmp_path):
  judged = _workdir(tmp_path / "runs")
  out = tmp_path / "docs" / "results.md"
  page = _results().write_page(str(tmp_path / "runs"), str(out), ["ganmut", "levasa"])
  assert judged[0].verdict == "holds"
  for c in judged:
    row = next(line for line in page.splitlines() if line.startswith(f"| {c.text} |"))
    assert c.line() in row and f"n = {c.n_a} / {c.n_b}" in row
  assert "| A beats B | Table 1: 0.26 vs 0.43 | 1.117 / 0.6 | holds: A - B = +0.5167" in page
  assert "| run | 3 | 1500 | 10 min | abc1234, rescored at def5678+dirty |" in page
  assert [c.verdict for c in judged] == ["holds", "inconclusive"]
  assert "| GANmut | 2 | 1 | 0 | 1 | 3 | 10 min | 1 of 1 |" in page  # the at-a-glance row
  assert "![results/ganmut/run/seed_0/space.png](results/ganmut/run/seed_0/space.png)" in page
  assert "## Not run yet" in page and "experiments/levasa.py" in page
  records = tmp_path / "docs" / "results"
  from PIL import Image
  with Image.open(records / "ganmut" / "run" / "seed_0" / "space.png") as copy:  # the page's copy:
    assert copy.size == (900, 300) and copy.convert("RGB").getpixel((450, 150)) == (200, 40, 40)
  assert (records / "ganmut" / "tables.md").read_text() == "# tables\n"
  assert json.loads((records / "ganmut" / "run" / "results.json").read_text())["per_seed"][0] == {"eval/x": 1.0}
  # a page written from a copy of the records copies its figures byte for byte (no churn in git)
  import shutil
  shutil.copytree(records, tmp_path / "copy")
  _results().write_page(str(tmp_path / "copy"), str(tmp_path / "other" / "results.md"), ["ganmut"])
  fig = os.path.join("ganmut", "run", "seed_0", "space.png")
  assert (tmp_path / "other" / "results" / fig).read_bytes() == (records / fig).read_bytes()
  again = _results().write_page(str(records), str(tmp_path / "docs" / "again.md"), ["ganmut", "levasa"])
  strip = lambda text: [line for line in text.splitlines() if "levasa" not in line]
  assert strip(again) == strip(page)
