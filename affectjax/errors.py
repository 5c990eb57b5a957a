"""The errors a user can cause and fix: each is reported as one line, never a traceback.

`python -m affectjax.main`, the experiment scripts and the tools catch UserError and print
`affectjax: error: <message>` (exit status 1). Raise a subclass with a message that names the
file, row or field and says what was expected.
"""
from __future__ import annotations


class UserError(Exception):
  """Bad input, a bad config, an unusable workdir or data directory, or a diverged run."""


class DataError(UserError, ValueError):
  """A data directory, file, row or cache that cannot be read as expected."""


def warn(message: str, category: type = UserWarning, registry: dict | None = None) -> None:
  """One warning line, `affectjax:0: <Category>: <message>` (warnings.warn would add a second
  line quoting the source of the call). registry: a dict to say a message once per process."""
  import warnings
  warnings.warn_explicit(message, category, "affectjax", 0, registry=registry)


def one_line(main):
  """main(argv) for absl's app.run, with a UserError printed as `affectjax: error: ...` (exit 1)."""
  import functools
  import sys

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except UserError as e:
      sys.exit(f"affectjax: error: {e}")

  return wrapped
