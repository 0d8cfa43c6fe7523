"""Damaged PNG bytes that Pillow decodes without a word (issue: a walkthrough's ``validate`` passed
them) and libpng, which OpenCV and the tools on it read with, refuses: a chunk's CRC broken, image
data garbled under a CRC made to fit, image data ending early."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fgaug.data.io import DataError, check_png_integrity, encode_png


def idat(data: bytes) -> tuple[int, bytes]:
    """The offset and body of a PNG's single IDAT chunk."""
    position, found = 8, []
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        if data[position + 4 : position + 8] == b"IDAT":
            found.append((position, data[position + 8 : position + 8 + length]))
        position += 12 + length
    (chunk,) = found
    return chunk


def with_idat(data: bytes, body: bytes) -> bytes:
    """``data`` with its IDAT chunk's body replaced, and its CRC made to fit."""
    offset, old = idat(data)
    crc = zlib.crc32(body, zlib.crc32(b"IDAT")).to_bytes(4, "big")
    return data[:offset] + len(body).to_bytes(4, "big") + b"IDAT" + body + crc + data[offset + 12 + len(old) :]


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "scene_gtFine_color.png"
    pixels = np.random.default_rng(0).integers(0, 255, (16, 32, 3), dtype=np.uint8)  # one IDAT chunk
    path.write_bytes(encode_png(pixels))
    return path


def test_a_whole_png_passes(png: Path) -> None:
    check_png_integrity(png)


def test_a_broken_crc_is_found_though_pillow_decodes_the_file(png: Path) -> None:
    data = bytearray(png.read_bytes())
    offset, body = idat(bytes(data))
    data[offset + 8 + len(body)] ^= 0xFF  # the first byte of the IDAT's CRC
    png.write_bytes(bytes(data))
    Image.open(png).load()
    assert cv2.imread(str(png)) is None
    with pytest.raises(DataError, match=r"scene_gtFine_color.png: a damaged PNG \(its IDAT chunk fails its CRC\)$"):
        check_png_integrity(png)


def test_garbled_image_data_under_a_fitting_crc_is_found(png: Path) -> None:
    data = png.read_bytes()
    body = bytearray(idat(data)[1])
    body[len(body) // 2 : len(body) // 2 + 8] = bytes(8)
    png.write_bytes(with_idat(data, bytes(body)))
    with pytest.raises(DataError, match=r"scene_gtFine_color.png: a damaged PNG \(its image data"):
        check_png_integrity(png)


def test_image_data_that_ends_early_is_found(png: Path) -> None:
    data = png.read_bytes()
    body = idat(data)[1]
    png.write_bytes(with_idat(data, body[: len(body) // 2]))
    with pytest.raises(DataError, match=r"a damaged PNG \(its image data ends early\)$"):
        check_png_integrity(png)
