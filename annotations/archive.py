"""Safe extraction of an import archive (a ``.zip`` holding one JSONL / CSV file plus its clips).

Nothing in the archive is trusted: member names are checked before anything is written (no absolute
paths, no ``..``, no drive letters, no links), the bytes actually written are counted against the
limits (a header's declared size can lie), and the archive lands in a temporary folder that is renamed
into place only when every member is out. A failure leaves no folder behind.

The folder is named after the archive's content hash, so importing the same zip twice extracts it once
and two different zips never share a folder. An archive expands to at most :func:`extract_cap` of its own
size (10x, at least 64 MiB, at most 2 GiB): clips do not compress, so more is a bomb or a mistake. After
an import the folder keeps only the clips samples use (:func:`prune_extracted`); a later import of the same
zip extracts what is missing again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from annotations.errors import StoreError

#: Most members an archive may hold.
MAX_MEMBERS = 20_000
#: Most bytes an archive may expand to (all members together), whatever its size.
MAX_TOTAL_BYTES = 2 << 30
#: An archive may always expand to this much (a small rows file plus a clip or two)...
MIN_EXTRACT_CAP = 64 << 20
#: ... and otherwise to this many times its own size (video clips are stored, not compressed).
EXTRACT_RATIO = 10
#: Largest expansion factor of one member (bytes out / bytes stored) once it passes 1 MiB: a zip bomb.
MAX_RATIO = 200
ROW_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")
_CHUNK = 1 << 20


def extract_cap(archive_bytes: int) -> int:
    """Most bytes an archive of `archive_bytes` may expand to."""
    return min(MAX_TOTAL_BYTES, max(MIN_EXTRACT_CAP, EXTRACT_RATIO * archive_bytes))


def _size_text(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):g} MiB"


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def member_path(name: str) -> PurePosixPath | None:
    """The member's relative path, or None for a directory entry; StoreError for an unsafe name."""
    clean = name.replace("\\", "/")
    if clean.endswith("/"):
        return None
    path = PurePosixPath(clean)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]) or "\0" in clean:
        raise StoreError(f"archive member {name!r} points outside the archive; nothing extracted")
    return path


def _check_members(archive: zipfile.ZipFile, max_members: int) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    infos = archive.infolist()
    if len(infos) > max_members:
        raise StoreError(f"archive has {len(infos)} members, more than {max_members}; nothing extracted")
    members = []
    for info in infos:
        path = member_path(info.filename)
        mode = info.external_attr >> 16
        if mode and stat.S_ISLNK(mode):
            raise StoreError(f"archive member {info.filename!r} is a link; nothing extracted")
        if path is not None and not _ignored(path):
            members.append((info, path))
    return members


def _ignored(path: PurePosixPath) -> bool:
    """macOS resource forks and hidden files are not part of a sample set."""
    return path.parts[0] == "__MACOSX" or any(part.startswith(".") for part in path.parts)


def _copy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: Path, budget: int, cap: int) -> int:
    """Stream one member to `out`; returns its size. Counts real bytes, not the header's claim."""
    written = 0
    with archive.open(info) as src, open(out, "wb") as dst:
        while block := src.read(_CHUNK):
            written += len(block)
            if written > budget:
                raise StoreError(f"archive expands past {_size_text(cap)} (its size limit); nothing extracted")
            if written > (1 << 20) and written > MAX_RATIO * max(1, info.compress_size):
                raise StoreError(f"archive member {info.filename!r} expands over {MAX_RATIO}x; nothing extracted")
            dst.write(block)
    return written


def extract_archive(
    path: str | os.PathLike[str],
    dest_root: str | os.PathLike[str],
    max_bytes: int | None = None,
    max_members: int = MAX_MEMBERS,
) -> Path:
    """Extract `path` into `dest_root/<name>-<hash>/` (reused when its rows file is there; files a prune left
    out are extracted again); returns that folder. At most `max_bytes` (default :func:`extract_cap`)."""
    path, dest_root = Path(path), Path(dest_root)
    if not zipfile.is_zipfile(path):
        raise StoreError(f"{path}: not a zip archive")
    target = dest_root / f"{path.stem}-{_digest(path)[:12]}"
    if target.is_dir() and _has_rows(target):
        return target
    cap = extract_cap(path.stat().st_size) if max_bytes is None else max_bytes
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}-", suffix=".tmp", dir=dest_root))
    try:
        with zipfile.ZipFile(path) as archive:
            left = cap
            for info, rel in _check_members(archive, max_members):
                out = tmp.joinpath(*rel.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                left -= _copy(archive, info, out, left, cap)
        _move_in(tmp, target)
    except zipfile.BadZipFile as exc:
        raise StoreError(f"{path}: damaged zip archive ({exc}); nothing extracted") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot extract ({exc.strerror or exc}); nothing extracted") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if dest_root.is_dir() and not any(dest_root.iterdir()):
            dest_root.rmdir()
    return target


def _has_rows(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in ROW_SUFFIXES for p in folder.rglob("*"))


def _move_in(tmp: Path, target: Path) -> None:
    """The extracted tree into `target`: renamed whole when new, else file by file where missing."""
    if not target.exists():
        os.replace(tmp, target)
        return
    for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
        dest = target / src.relative_to(tmp)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)


def prune_extracted(folder: str | os.PathLike[str], keep: set[str], older_than_s: float | None = None) -> int:
    """Delete every file under an extracted `folder` whose absolute path is not in `keep` (the clips samples
    use; with `older_than_s`, only files not modified for that long), then the folders left empty, the folder
    itself included; returns how many files went."""
    folder, removed = Path(folder), 0
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_s if older_than_s is not None else None
    for item in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # children first
        try:
            if item.is_file() or item.is_symlink():
                fresh = cutoff is not None and item.lstat().st_mtime >= cutoff
                if os.path.abspath(item) not in keep and not fresh:
                    item.unlink()
                    removed += 1
            elif item.is_dir() and not any(item.iterdir()):
                item.rmdir()
        except OSError:  # gone already, or in use: the next prune
            continue
    with contextlib.suppress(OSError):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def rows_file(folder: Path) -> Path:
    """The one JSONL / CSV file of an extracted archive (StoreError when there is none or several)."""
    found = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in ROW_SUFFIXES and not _hidden(p, folder)
    )
    if len(found) != 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found[:5]) or "none"
        raise StoreError(f"the archive must hold exactly one .jsonl or .csv file of rows, found {len(found)}: {names}")
    return found[0]


def _hidden(path: Path, folder: Path) -> bool:
    return _ignored(PurePosixPath(path.relative_to(folder).as_posix()))
