"""Verified download of a dataset's raw files.

Each file goes to ``raw_dir/<dataset>/<file>`` (MNIST and Fashion-MNIST share file names, so each
dataset needs its own folder). It is written to a temporary file in that folder, checked against
the registry's sha256 values, and only then renamed into place with ``os.replace`` (atomic on one
file system). So a failed, truncated or interrupted download never leaves a file at the final path,
and the temporary file is removed on every failure (including Ctrl-C).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from ..io import atomic_path
from .registry import ENV_MIRRORS, DatasetSpec, FileSpec, get_dataset, resolve_sources

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "vaepriors-downloader/0.1 (+python urllib)"


class DownloadError(RuntimeError):
    """No source could deliver a verified copy of some file; the message says what was tried."""


class SourceFailed(Exception):
    """One source failed for one file; the message is the reason shown to the user."""


class SourceUnreachable(SourceFailed):
    """The source could not be reached at all, so later files need not try it again."""


# --- verification --------------------------------------------------------------------------------

def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_decompressed(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with gzip.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_file(path: str | Path, spec: FileSpec) -> tuple[bool, str]:
    """(accepted, why). Accepted when the .gz sha256 matches the upstream file or the sha256 of the
    decompressed content matches (recompressed copies such as Debian's)."""
    path = Path(path)
    gz = _sha256_file(path)
    if spec.gz_sha256 is not None and gz == spec.gz_sha256:
        return True, "sha256 of the .gz matches the upstream file"
    if spec.raw_sha256 is None:
        return False, f".gz sha256 {gz} does not match the expected {spec.gz_sha256}"
    try:
        raw, size = _sha256_decompressed(path)
    except (OSError, EOFError, zlib.error) as exc:
        return False, (f"not a valid gzip file ({exc}); .gz sha256 {gz} does not match the "
                       f"expected {spec.gz_sha256}")
    if raw == spec.raw_sha256:
        return True, "sha256 of the decompressed content matches"
    return False, (f"sha256 mismatch: .gz {gz} (expected {spec.gz_sha256}), decompressed {raw} "
                   f"(expected {spec.raw_sha256}, {size} bytes vs {spec.raw_size})")


# --- one source, one file ------------------------------------------------------------------------

def _is_url(source: str) -> bool:
    return "://" in source


def _progress(total: int | None, name: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, file=sys.stderr, leave=False)


def _copy_local(directory: str, name: str, out, progress: bool) -> None:
    src = Path(directory.removeprefix("file://")) / name
    if not src.is_file():
        raise SourceFailed("not found" if not src.exists() else "not a regular file")
    try:
        with open(src, "rb") as fh, _progress(src.stat().st_size, name, progress) as bar:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                out.write(chunk)
                bar.update(len(chunk))
    except OSError as exc:
        raise SourceFailed(f"cannot read {src}: {exc.strerror or exc}") from None


def _download(base_url: str, name: str, out, progress: bool, timeout: float) -> None:
    url = base_url if base_url.endswith(name) else base_url.rstrip("/") + "/" + name
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    received, total = 0, None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress(total, name, progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise SourceFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise SourceUnreachable(f"cannot connect: {exc.reason}") from None
    except http.client.IncompleteRead as exc:
        raise SourceFailed(f"truncated body: connection closed after {received + len(exc.partial)}"
                           f" of {total} bytes") from None
    except TimeoutError:  # socket.timeout is an alias of it
        raise SourceUnreachable(f"timed out after {timeout:g} s (received {received} bytes)") \
            from None
    except (http.client.HTTPException, OSError) as exc:
        raise SourceFailed(f"transfer failed after {received} bytes: {exc!r}") from None
    # urllib does not always notice a short body (e.g. when the server closes early), so compare.
    if total is not None and received != total:
        raise SourceFailed(f"truncated body: got {received} of {total} bytes (Content-Length)")


def _fetch_from(source: str, spec: FileSpec, dest: Path, progress: bool, timeout: float) -> str:
    """Fetch one file from one source into ``dest/name``; return why it was accepted."""
    # Every failure path (and KeyboardInterrupt) leaves the block before the rename: no leftovers.
    # mkstemp makes the file 0600; the final file should read like any other.
    with atomic_path(dest / spec.name, suffix="", prefix=f".{spec.name}.partial-", fsync=True) as tmp:
        with open(tmp, "wb") as out:
            if _is_url(source) and not source.startswith("file://"):
                if not source.startswith(("http://", "https://")):
                    raise SourceFailed("unsupported URL scheme (only http, https and directories)")
                _download(source, spec.name, out, progress, timeout)
            else:
                _copy_local(source, spec.name, out, progress)
        ok, why = verify_file(tmp, spec)
        if not ok:
            raise SourceFailed(why)
    return why


# --- a whole dataset -----------------------------------------------------------------------------

def dataset_dir(raw_dir: str | Path, name: str) -> Path:
    return Path(raw_dir) / name


def _help_text(spec: DatasetSpec, dest: Path, missing: list[str]) -> str:
    return (
        f"To supply the files by hand, obtain {', '.join(missing)} (from one of the sources above, "
        f"or copied from another machine) and put them in a directory, then either list that "
        f"directory under data.mirrors in params.yaml or set {ENV_MIRRORS}=/that/directory "
        f"(several directories separated by {os.pathsep!r}); a mirror may also hold them in a "
        f"subfolder named {spec.name!r}. Or place them directly in {dest}/. Files are accepted "
        f"when the sha256 of the .gz or of its decompressed content matches "
        f"src/vaepriors/data/registry.py."
    )


def fetch_dataset(name: str, raw_dir: str | Path, mirrors=(), progress: bool = True,
                  timeout: float = 60.0) -> dict[str, Path]:
    """Make sure every file of dataset ``name`` is in ``raw_dir/name/`` and verified.

    Files already present and verified are kept. Otherwise the sources are tried in order
    ($VAEPRIORS_MIRRORS, ``mirrors``, the registry's). Returns {file name: path}. Raises
    DownloadError listing every source tried for every file that no source could deliver.
    """
    spec = get_dataset(name)
    dest = dataset_dir(raw_dir, name)
    dest.mkdir(parents=True, exist_ok=True)
    sources = resolve_sources(spec, mirrors)
    unreachable: dict[str, str] = {}  # source -> reason, so a dead host is not retried per file
    paths: dict[str, Path] = {}
    failures: dict[str, list[tuple[str, str]]] = {}

    for fspec in spec.files:
        final = dest / fspec.name
        if final.exists():
            ok, why = verify_file(final, fspec)
            if ok:
                log.info("%s: present and verified (%s)", final, why)
                paths[fspec.name] = final
                continue
            # Never keep an unverified file at the final path: later stages trust it.
            log.warning("%s: present but rejected (%s); removing it and fetching again", final, why)
            final.unlink()
        tried: list[tuple[str, str]] = []
        for source in sources:
            if source in unreachable:
                tried.append((source, f"skipped, unreachable earlier ({unreachable[source]})"))
                continue
            try:
                why = _fetch_from(source, fspec, dest, progress, timeout)
            except SourceUnreachable as exc:
                unreachable[source] = str(exc)
                tried.append((source, str(exc)))
            except SourceFailed as exc:
                tried.append((source, str(exc)))
            else:
                log.info("%s: from %s (%s)", final, source, why)
                paths[fspec.name] = final
                break
            log.warning("%s: %s failed: %s", fspec.name, source, tried[-1][1])
        else:
            failures[fspec.name] = tried

    if failures:
        lines = [(f"could not obtain {len(failures)} of {len(spec.files)} files of dataset "
                  f"{name!r} into {dest}:")]
        for file_name, tried in failures.items():
            lines.append(f"  {file_name}:")
            lines += [f"    - {source}: {reason}" for source, reason in tried]
            if not tried:
                lines.append("    (no sources configured)")
        lines.append(_help_text(spec, dest, list(failures)))
        raise DownloadError("\n".join(lines))
    return paths
