"""Folders written whole or not at all: build in a staging folder beside the target, then rename.

Exports (SavedModel, LiteRT) are folders of several files that a model server may be reading;
it must see the earlier export or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def staged_folder(target: str):
    """Yields an empty staging folder; on success it replaces `target`, else it is deleted.

    The staging folder sits beside `target` (same file system, so the final move is a rename),
    is readable by others (a model server may run as another user) and is named after the
    process, so that staging folders left by killed processes are cleaned up by the next call.

    Raises:
        OSError: the parent of `target` cannot be created (the message names it).
    """
    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:  # not FileExistsError to callers: the folder could not be made
        raise OSError(f"{parent}: cannot create the export's folder ({error})") from None
    remove_stale_staging(target)
    staging = tempfile.mkdtemp(prefix=f"{_staging_prefix(target)}{os.getpid()}-", dir=parent)
    os.chmod(staging, 0o755)  # mkdtemp makes it private
    try:
        yield staging
        replace_folder(staging, target)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)


def _staging_prefix(target: str) -> str:
    return f".{os.path.basename(target)}.tmp-"


def remove_stale_staging(target: str) -> None:
    """Deletes staging folders of earlier writes of `target` whose process has died.

    Folders of a process that is still running (a concurrent export) are left alone.
    """
    parent, prefix = os.path.dirname(target), _staging_prefix(target)
    for name in os.listdir(parent):
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def replace_folder(source: str, destination: str) -> None:
    """Moves the finished `source` folder to `destination`, replacing an earlier one."""
    if not os.path.exists(destination):
        os.replace(source, destination)
        return
    # Directories cannot be swapped in one rename: move the old one aside first, so the
    # destination is only ever missing between two renames, never half-written.
    retired = tempfile.mkdtemp(prefix=f".{os.path.basename(destination)}.old-",
                               dir=os.path.dirname(destination))
    os.rmdir(retired)
    os.replace(destination, retired)
    os.replace(source, destination)
    shutil.rmtree(retired, ignore_errors=True)
