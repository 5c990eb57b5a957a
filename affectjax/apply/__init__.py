"""Use a trained run on your own files: `python -m affectjax.apply --workdir=RUN --input=FILE_OR_DIR
--output=DIR [method flags]` (see core.py for every method's outputs and __main__.py for flags).

Library use: `affectjax.apply.apply(workdir, input, output, Options(...))` returns a Summary;
`load_run(workdir)` restores a run's state as train.py does.
"""
from affectjax.apply.core import Options, Summary, apply  # noqa: F401
from affectjax.apply.run import Run, load_run  # noqa: F401
