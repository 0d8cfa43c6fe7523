"""File input and output shared by the data modules: atomic writes, PNG encoding and checked reads.

Every read error is a :class:`DataError` whose message starts with the file's path and says what
is wrong, so the CLI can print it as one line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fgaug.errors import FgaugError


class DataError(FgaugError, ValueError):
    """An input file is missing, unreadable or not what a Cityscapes tree should hold."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, or its type's name. A line longer than ``limit``
    characters is cut after its last whole sentence within them, else at the limit, and marked
    " ..." either way."""
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    line = lines[0]
    if len(line) <= limit:
        return line
    sentence_end = line.rfind(". ", 0, limit)
    return (line[: sentence_end + 1] if sentence_end > 0 else line[: limit - 4]) + " ..."


def temporary_beside(path: str | Path) -> Path:
    """A new empty file next to ``path`` (same filesystem, so a rename is atomic), with the
    permissions a plain ``open`` would give (mkstemp's are owner-only). An error names ``path``,
    not the temporary file that the user never asked for (a read-only folder)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as error:
        raise OSError(error.errno, f"cannot write it ({error.strerror})", str(path)) from error
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    return Path(temporary)


def check_file_to_write(path: str | Path, option: str, example: str) -> None:
    """Refuse, before any work, a file that a command writes at its end but could not: ``path`` is
    a folder, or the folder it would go in lies under a file or cannot be written (read-only). A
    :class:`DataError` naming ``path`` and the ``option`` that gave it."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; {option} names the file to write, e.g. {example}")
    folder = next(parent for parent in path.absolute().parents if parent.exists())
    if not folder.is_dir():
        raise DataError(f"{path}: cannot write it ({folder} is a file)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{path}: cannot write it ({folder} is read-only)")


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; renamed onto ``path`` when the block
    succeeds, removed when it fails. A reader (or an interrupted run) never sees half a file.
    An ``OSError`` of the writing that names no file or the temporary one (a full disk's ``write``
    names none) is raised again naming ``path``, so that the user reads which file failed; so is
    one that a writer's own error hides (torch's zip writer, given a Python file, raises a
    RuntimeError as it closes the archive after a failed write)."""
    temporary = temporary_beside(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        failure = error if isinstance(error, OSError) else error.__context__
        if not isinstance(failure, OSError) or failure.filename not in (None, str(temporary)):
            raise
        reason = os.strerror(failure.errno) if failure.errno else first_line(failure)
        raise OSError(failure.errno, reason, str(path)) from error
    finally:
        temporary.unlink(missing_ok=True)


def read_json(path: str | Path, what: str) -> Any:
    """The JSON document in the file ``path``; a file that is missing, unreadable or not JSON is a
    :class:`DataError` naming it as ``what`` (``{path}: not a readable {what} (...)``)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable {what} ({first_line(error)})") from error


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)


def files_in_place(root: Path, files: Iterable[str]) -> bool:
    """Whether every one of ``files`` (paths under ``root``) is there and whole as far as its ends
    tell, each opened once and nothing decoded: a PNG's signature and IEND chunk, a JSON file's
    closing brace. What a rerun trusts an earlier run's item by instead of making it again; a file
    emptied or cut short makes the item again (``validate`` decodes every file)."""
    try:
        return all(_ends_whole(root / name) for name in files)
    except OSError:
        return False


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _ends_whole(path: Path) -> bool:
    with open(path, "rb") as stream:
        if path.suffix not in (".png", ".json"):
            return True
        head = stream.read(len(PNG_SIGNATURE))
        stream.seek(max(0, os.fstat(stream.fileno()).st_size - 1024))
        tail = stream.read()
    if path.suffix == ".png":
        return head == PNG_SIGNATURE and PNG_END in tail
    return tail.rstrip().endswith(b"}")


def check_archive_checksums(path: str | Path, what: str, error: type[FgaugError] = DataError) -> None:
    """Refuse a zip archive ``path`` (``what``: "checkpoint", "segmenter") one of whose records does
    not match its CRC-32, a byte changed or lost on a disk or in a copy, with a one-line ``error``
    naming the file; anything else passes (a legacy pickle). ``torch.save`` files are zip
    archives with a checksum per record, which ``torch.load`` does not check: a changed byte in a
    weight loads without a word. Records stored without a checksum (CRC-32 of 0) pass. Reading
    takes under 0.1 s per 100 MiB."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for record in archive.infolist():
                if record.CRC != 0 and not _matches_checksum(archive, record):
                    inside = record.filename.partition("/")[2] or record.filename
                    raise error(
                        f"{path}: a damaged {what}: its record {inside} does not match its checksum (a byte changed "
                        "or lost); use another copy of the file"
                    )
    except (zipfile.BadZipFile, OSError) as failure:
        raise error(f"{path}: not a readable {what} ({first_line(failure)})") from failure


def _matches_checksum(archive: zipfile.ZipFile, record: zipfile.ZipInfo) -> bool:
    try:
        with archive.open(record) as stream:
            while stream.read(1 << 24):
                pass
    except zipfile.BadZipFile:  # zipfile checks the CRC-32 as the record's last bytes are read
        return False
    return True


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest_once(path: Path, digests: dict[Path, str]) -> str:
    """:func:`file_digest` of ``path``, kept in ``digests`` (by path) so that a run hashes each
    source file once (threads may hash one file twice, to the same value)."""
    digest = digests.get(path)
    if digest is None:
        digest = digests[path] = file_digest(path)
    return digest


_PAETH_FILTER = (cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH) if hasattr(cv2, "IMWRITE_PNG_FILTER") else ()
PNG_ENCODING = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE, *_PAETH_FILTER)
"""libpng's settings for every PNG fgaug writes: the Paeth filter on every row, then zlib's
run-length strategy (matches at distance 1 only), at level 1. The order matters: OpenCV resets
the strategy when it reads the level. Against Pillow at level 4, which fgaug used before, on one
core of an AVX2 EPYC: a 1024x2048 photo encodes 2.4-3.5x faster, label files 2.5-2.9x; the files
are 11% smaller to 9% larger (18% for colour label files of a few KiB): smaller for id files and
upsampled samples, larger for a photo at its camera's resolution (``benchmarks/png_encoding.py``).
OpenCV before 4.12 cannot set the filter; libpng then chooses each row's, which gave files of the
same size in about 1.3x the time."""

LIBPNG_SIDE_LIMIT = 1_000_000
"""The widest or tallest image libpng writes by its default limits, which OpenCV keeps; a longer
side (an ``interpolate`` strip of thousands of steps) is encoded by Pillow, which has no limit."""

_TO_BGR = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W) / (H, W, 3) RGB / (H, W, 4) RGBA or uint16 (H, W) array,
    encoded with :data:`PNG_ENCODING`. OpenCV releases the GIL while it encodes, so threads encode
    in parallel (:mod:`fgaug.data.background`)."""
    grey = array.ndim == 2 and array.dtype in (np.uint8, np.uint16)
    colour = array.ndim == 3 and array.dtype == np.uint8 and array.shape[2] in (3, 4)
    if not (grey or colour) or array.size == 0:
        raise ValueError(f"cannot write a {array.dtype} array of shape {array.shape} as PNG")
    pixels = np.ascontiguousarray(array)
    if max(pixels.shape[:2]) > LIBPNG_SIDE_LIMIT:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
    if colour:
        pixels = cv2.cvtColor(pixels, _TO_BGR[array.shape[2]])
    encoded, encoding = cv2.imencode(".png", pixels, PNG_ENCODING)
    if not encoded:
        raise ValueError(f"OpenCV could not encode a {array.dtype} array of shape {array.shape} as PNG")
    return encoding.tobytes()


RGB_MODES = ("RGB", "RGBA", "P")
"""PNG modes read as RGB: photos, and colour masks."""


def not_a_file(path: str | Path, what: str = "file", option: str = "") -> DataError:
    """The one-line error for a ``what`` (``file``, ``segmenter``...) that is not at ``path``:
    "a folder, not a <what>" where a folder is (a folder given for a file), else "<what> not
    found"; ``option`` (``--content-mask``) goes before the path."""
    named = f"{option} {path}" if option else str(path)
    first = what.split()[0]
    # an initialism is read letter by letter: "an LPIPS network"
    article = "an" if (first[0] in "AEFHILMNORSX" if first.isupper() else first[0] in "aeiou") else "a"
    return DataError(
        f"{named}: a folder, not {article} {what}" if Path(path).is_dir() else f"{named}: {what} not found"
    )


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``path`` opened by PIL; a missing file and every failure to read it, inside the block too,
    are a one-line :class:`DataError`."""
    if not path.is_file():
        raise not_a_file(path, "image") if path.is_dir() else not_a_file(path)
    try:
        with Image.open(path) as image:
            yield image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, zlib.error) as error:
        raise DataError(f"{path}: not a readable image ({error})") from error


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image, turning every failure into a one-line :class:`DataError`."""
    with _opened(Path(path)) as image:
        image.load()
        return image.copy()


PNG_END = b"IEND\xaeB`\x82"
"""The type and CRC of a PNG's last chunk, IEND (it holds no data, so they never change)."""


def image_header(path: str | Path) -> tuple[str, tuple[int, int]]:
    """An image's mode and (height, width), read from its header alone (no pixels decoded), and,
    for a PNG, that the file ends in its IEND chunk: a file cut short (a copy or upload stopped
    midway) is found here, before its pixels are needed. Failures are the one-line
    :class:`DataError` of :func:`open_image`."""
    with _opened(Path(path)) as image:
        mode, size, png = image.mode, (image.height, image.width), image.format == "PNG"
    if not png and Path(path).suffix.lower() == ".png":
        raise DataError(f"{path}: named .png but a {image.format} file (label files must be lossless PNGs)")
    if png and not _ends_in_png_end(Path(path)):
        raise DataError(f"{path}: not a readable image (cut short: it does not end in the PNG's IEND chunk)")
    return mode, size


def _ends_in_png_end(path: Path) -> bool:
    """Whether the last KiB of ``path`` holds the IEND chunk (bytes after it, which some tools
    append and readers ignore, are allowed)."""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 1024))
        return PNG_END in handle.read()


def check_png_integrity(path: str | Path) -> None:
    """Refuse a PNG whose bytes are damaged where a decoder may not look: a chunk whose CRC fails,
    or image data that zlib cannot inflate to its end or whose own checksum fails. Pillow decodes
    such a file without a word (it checks no CRC of image data) into wrong pixels or whole ones,
    while libpng, and OpenCV and the tools built on it, refuse it. A :class:`DataError` naming
    ``path``; the caller has read its header (:func:`image_header`)."""
    data = Path(path).read_bytes()
    inflater, position = zlib.decompressobj(), len(PNG_SIGNATURE)
    try:
        while position + 12 <= len(data):
            length, kind = int.from_bytes(data[position : position + 4], "big"), data[position + 4 : position + 8]
            end = position + 8 + length
            body = data[position + 8 : end]
            if zlib.crc32(body, zlib.crc32(kind)) != int.from_bytes(data[end : end + 4], "big"):
                raise DataError(f"{path}: a damaged PNG (its {kind.decode('latin-1')} chunk fails its CRC)")
            if kind == b"IDAT":
                inflater.decompress(body)
            if kind == b"IEND":
                break
            position = end + 4
    except zlib.error as error:
        raise DataError(f"{path}: a damaged PNG (its image data does not inflate: {error})") from error
    if not inflater.eof:
        raise DataError(f"{path}: a damaged PNG (its image data ends early)")


def check_photo_mode(path: str | Path, mode: str) -> None:
    if mode not in RGB_MODES:
        raise DataError(f"{path}: expected an 8-bit RGB photo, got PNG mode {mode}")


def read_rgb(path: str | Path) -> np.ndarray:
    """An 8-bit RGB photo (RGBA and palette images converted); other modes are an error."""
    image = open_image(path)
    check_photo_mode(path, image.mode)
    return np.asarray(image.convert("RGB") if image.mode != "RGB" else image, dtype=np.uint8)
