"""Unpacking a model directory uploaded over HTTP as a tar archive.

A tar stream is what ``tar -c -C model .`` or ``tarfile`` write without extra tooling, it carries a
directory with its names, and Python can extract it with the ``data`` filter (PEP 706), which refuses
absolute names, ``..``, links leaving the directory and device files. The unpacked directory then goes
through the same ``scan`` / validation as a local import, so an upload is never trusted more than a path.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import BinaryIO

from llmops.errors import InvalidInput, InvalidModel


def unpack(fileobj: BinaryIO, dest: Path) -> Path:
    """Extract a (possibly gzip/bz2/xz-compressed) tar stream into ``dest``; return the model directory.

    An archive whose entries all sit under one top-level directory (``tar -c my-model``) yields that
    directory; otherwise ``dest`` itself (``tar -c -C my-model .``).
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as archive:
            archive.extractall(dest, filter="data")
    except tarfile.ReadError as exc:
        raise InvalidInput(
            f"the upload is not a tar archive ({exc}); send `tar -c -C MODEL_DIR .` "
            "(optionally gzip-compressed) as the request body with Content-Type: application/x-tar",
            details={"field": "body"},
        ) from exc
    except tarfile.FilterError as exc:
        raise InvalidModel(
            f"refusing the archive: {exc} (entries must be plain files and directories inside the model)",
            details={"rule": "archive_member"},
        ) from exc
    except (EOFError, tarfile.TarError) as exc:
        raise InvalidInput(f"the tar archive is truncated or damaged: {exc}", details={"field": "body"}) from exc
    entries = [p for p in dest.iterdir() if p.name not in {".", ""}]
    if not entries:
        raise InvalidInput("the tar archive is empty: it must contain the model's files", details={"field": "body"})
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest
