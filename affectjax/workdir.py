"""The workdir's own files: one run at a time (a lock), config.json written atomically and
compared with the config of a resumed run.

Everything here survives kill -9 at any instant: files are replaced, never rewritten in place,
and a lock left by a killed run is recognised as stale and taken over.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import re
import socket
import sys
import time
import warnings

from affectjax.errors import UserError, warn

LOCK = ".affectjax.lock"
CONFIG = "config.json"

# Changing these on resume is allowed (and said): they change how long, how often and how fast
# a run trains, or where its inputs are, not which experiment it is. Everything else -- method,
# variant, seed, model, loss, data, batch size, seeds -- is refused unless
# config.train.allow_config_change is set. optim is allowed so that a diverged run can be
# resumed from its last good checkpoint with a saner learning rate.
RESUMABLE_PREFIXES = ("optim.", "train.", "eval.")
FROZEN_TRAIN = ("train.batch_size", "train.num_seeds", "train.shared_data_order")
RESUMABLE_DATA = ("data.manual_dir", "data.tfds_dir", "data.cache_dir", "data.num_parallel_calls",
                  "data.prefetch")


class WorkdirError(UserError, OSError):
  """The workdir cannot be created or written, is in use, or holds a run of another config."""


# ---------------------------------------------------------------- atomic files

def write_atomic(path: str, text: str | bytes) -> None:
  """Writes path through a temporary file and os.replace: a kill leaves the old file or the new."""
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "wb" if isinstance(text, bytes) else "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except OSError:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def read_config(workdir: str) -> dict | None:
  """The workdir's config.json as a dict; None when absent. A garbled one (a run killed by an
  older version mid-write, or edited by hand) is moved aside with a warning and counts as absent."""
  path = os.path.join(workdir, CONFIG)
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (ValueError, UnicodeDecodeError) as e:
    dest = f"{path}.unreadable_{int(time.time())}"
    os.replace(path, dest)
    warn(f"{path} is not valid JSON ({e}); moved to {dest}, the run's config.json is written anew")
    return None


def flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _resumable(field: str) -> bool:
  if field in FROZEN_TRAIN:
    return False
  return field.startswith(RESUMABLE_PREFIXES) or field in RESUMABLE_DATA


def config_changes(old: dict, new: dict) -> tuple[list[str], list[str]]:
  """(refused, allowed): 'field: old -> new' for every field set in both configs with another
  value. A field only one side has (a field added to affectjax since) is neither."""
  old_f, new_f = flat(old), flat(new)
  refused, allowed = [], []
  for k in sorted(set(old_f) & set(new_f)):
    a, b = old_f[k], new_f[k]
    if a != b and not (isinstance(a, list) and isinstance(b, (list, tuple)) and list(b) == a):
      (allowed if _resumable(k) else refused).append(f"{k}: {a!r} -> {b!r}")
  return refused, allowed


def check_resume_config(workdir: str, config) -> None:
  """On resume: a config that trains another experiment than the workdir's is refused in one
  line (unless config.train.allow_config_change); allowed changes are printed."""
  old = read_config(workdir)
  if old is None:
    return
  refused, allowed = config_changes(old, json.loads(config.to_json_best_effort()))
  if refused and not config.train.get("allow_config_change", False):
    raise WorkdirError(
        f"{workdir} holds a run of another experiment; resuming it would change "
        f"{'; '.join(refused)}. Nothing was changed: use a new --workdir, rerun with the old "
        f"config ({os.path.join(workdir, CONFIG)}), or pass --config.train.allow_config_change=True")
  if refused or allowed:
    print(f"resuming with changed config fields: {'; '.join(refused + allowed)}", flush=True)


# ---------------------------------------------------------------- one run per workdir

def _start_time(pid: int) -> str | None:
  """The process's start time in clock ticks since boot (Linux /proc), to tell a live process
  from a later one that reused its pid; None where /proc has no such process."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _alive(holder: dict) -> bool:
  pid = int(holder.get("pid", -1))
  if pid <= 0:
    return False
  if os.path.exists("/proc/self/stat"):
    start = _start_time(pid)
    return start is not None and (not holder.get("start") or start == holder["start"])
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _me() -> dict:
  return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid()),
          "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _read_lock(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}  # torn or vanished: treated as stale


@contextlib.contextmanager
def lock(workdir: str, enabled: bool = True):
  """Holds workdir/.affectjax.lock (host, pid) for the run. A lock held by a live process is
  refused in one line; one left by a process that is gone (same host) is taken over."""
  if not enabled:
    yield
    return
  path = os.path.join(workdir, LOCK)
  me = _me()
  for _ in range(3):
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      holder = _read_lock(path)
      same_host = holder.get("host") == me["host"]
      if holder and not same_host:
        raise WorkdirError(
            f"{workdir} is in use by process {holder.get('pid')} on host {holder.get('host')} "
            f"(since {holder.get('since')}); one run per workdir. If that run is gone, delete "
            f"{path}") from None
      if holder and _alive(holder):
        raise WorkdirError(
            f"{workdir} is in use by process {holder.get('pid')} on this host (since "
            f"{holder.get('since')}); one run per workdir: wait for it, stop it, or use another "
            f"--workdir") from None
      # Stale: replace it atomically, then check that the lock is ours (another run may race).
      write_atomic(path, json.dumps(me))
      if _read_lock(path).get("pid") == me["pid"]:
        print(f"took over the stale lock of process {holder.get('pid')} in {workdir}", flush=True)
        break
      continue
    except OSError as e:
      raise WorkdirError(f"cannot create the lock {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "w") as f:
      f.write(json.dumps(me))
    break
  else:
    raise WorkdirError(f"{workdir}: another run took the lock {path} first")
  try:
    yield
  finally:
    if _read_lock(path).get("pid") == me["pid"]:
      with contextlib.suppress(OSError):
        os.remove(path)


# ---------------------------------------------------------------- a full disk, a read-only workdir

DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)
# Orbax (TensorStore) reports the filesystem's errors as ValueError text, not OSError.
_DISK_TEXT = {"No space left on device": errno.ENOSPC, "os_error_code='28'": errno.ENOSPC,
              "Disk quota exceeded": errno.EDQUOT, "Read-only file system": errno.EROFS,
              "Permission denied": errno.EACCES}


def _from_text(text: str) -> OSError | None:
  code = next((c for pattern, c in _DISK_TEXT.items() if pattern in text), None)
  if code is None:
    return None
  path = re.search(r'(?:local file|Failed writing:) "([^"]+)"', text)
  return OSError(code, os.strerror(code), path.group(1) if path else None)


def _file_being_written(tb) -> str | None:
  """The innermost file opened for writing in a traceback's frames: what a failed f.write() or
  close was writing (Python names the file only when open() itself fails)."""
  name = None
  while tb is not None:
    for value in list(tb.tb_frame.f_locals.values()):
      if (isinstance(value, io.IOBase) and isinstance(getattr(value, "name", None), str)
          and any(m in getattr(value, "mode", "") for m in "wax+")):  # not a file being read
        name = value.name
    tb = tb.tb_next
  return name


def disk_error(e: BaseException) -> OSError | None:
  """The filesystem's error (full, read-only, not permitted) in e or its causes, as an OSError
  naming the file where it can be found."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
      if e.filename is None:
        e.filename = _file_being_written(e.__traceback__)
      return e
    found = _from_text(str(e))
    if found is not None:
      return found
    e = e.__cause__ or e.__context__
  return None


def describe_disk_error(e: OSError, workdir: str) -> str:
  where = e.filename or workdir
  return (f"cannot write {where}: {e.strerror or e}. What was written before stays as it was "
          f"(the newest complete checkpoint in {workdir}/checkpoints is resumed from once there "
          f"is room)")


class _DropDiskErrorTracebacks(logging.Filter):
  """Orbax logs a traceback from each of its background threads when a save fails for lack of
  room, and asyncio logs its failed write tasks ('Task exception was never retrieved') when they
  are collected, often at exit; the same error reaches the loop, which reports it in one line, so
  those are dropped."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno < logging.ERROR or not (record.name == "asyncio" or "orbax" in record.pathname):
      return True
    exc = record.exc_info[1] if record.exc_info else None
    return disk_error(exc) is None and _from_text(record.getMessage()) is None


def _ignore_closed_loop(unraisable, default=sys.unraisablehook):
  # After a failed save Orbax closes its event loop while TensorStore still delivers callbacks
  # to it: each is an ignorable 'Event loop is closed' that Python would print as a traceback;
  # a disk error raised where no one can catch it is the one the loop already reported.
  if unraisable.exc_type is RuntimeError and "Event loop is closed" in str(unraisable.exc_value):
    return
  if unraisable.exc_value is not None and disk_error(unraisable.exc_value) is not None:
    return
  default(unraisable)


UNAWAITED = r"coroutine '.*' was never awaited"  # Python's warning for a collected coroutine


def quiet_disk_error_logs() -> None:
  """For the command line: a failed save (full disk) prints the loop's one line, not Orbax's
  background threads' or asyncio's tracebacks."""
  for name in ("absl", "asyncio"):
    logger = logging.getLogger(name)
    if not any(isinstance(f, _DropDiskErrorTracebacks) for f in logger.filters):
      logger.addFilter(_DropDiskErrorTracebacks())
  sys.unraisablehook = _ignore_closed_loop
  # A failed save leaves Orbax's remaining write coroutines (serialization's write_fragment)
  # unscheduled; collected at exit, each would print a RuntimeWarning under the one line.
  # affectjax runs no coroutines of its own, so on the command line none of these is ours.
  warnings.filterwarnings("ignore", message=UNAWAITED, category=RuntimeWarning)


SEED_DIR = "seed_{}"  # a K-seed run's per-seed report directory (train.seed_report_dir)


def run_workdir(workdir: str) -> str:
  """The run's workdir for a per-seed report directory (workdir/seed_<i>/ of a K-seed run, a
  folder beside the run's checkpoints/: the parent, where artefacts shared by the seeds, such as
  an evaluator, belong), else workdir."""
  parent, name = os.path.split(os.path.normpath(workdir))
  is_seed_dir = (re.fullmatch(SEED_DIR.format(r"\d+"), name)
                 and os.path.isdir(os.path.join(parent, "checkpoints")))
  return parent if is_seed_dir else workdir
