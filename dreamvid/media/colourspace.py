"""The colour of a video stream: the YCbCr matrix and range of its pixels, and the tags that say so.

A video stores RGB frames as YCbCr, converted with a matrix; a player converts back with the
matrix the stream is tagged with or, when it is untagged, with its own guess: BT.709 for HD
(a width of 1280 or a height of 720 and up), BT.601 below. ffmpeg converts with BT.601
unless told otherwise and tags nothing, so an HD video written that way shows shifted greens
and magentas in browsers, QuickTime and on video platforms. Hence, both ways explicit:

* writing (:func:`for_writing`, :func:`encode_filter`, :func:`tag_args`): frames are converted
  with BT.709 at HD and above, BT.601 below (what every player assumes there, so even one that
  ignores tags shows it right), limited range, and tagged with that matrix, BT.709 primaries
  and transfer (the frames are sRGB) and the range. RGB pixel formats (``rgb24`` with
  ``libx264rgb``) are not converted; they are tagged as RGB, full range;
* reading (:func:`parse_tags`, :func:`for_reading`, :func:`decode_filter`): a stream is
  converted to RGB with the matrix and range it is tagged with, or with the players'
  convention by its size when it is not.

Names are ffmpeg's (``-colorspace`` values: ``bt709``, ``smpte170m`` (BT.601), ``bt2020nc``,
``gbr`` for RGB ...); :data:`SCALE_MATRIX` maps them to the scale filter's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dreamvid.core import defaults as D

__all__ = ["FFMPEG_MATRIX", "Colour", "Tags", "decode_filter", "encode_filter", "for_reading", "for_writing",
           "is_hd", "is_rgb", "parse_tags", "tag_args"]

FFMPEG_MATRIX = "smpte170m"  # what ffmpeg converts with when not told: BT.601 (releases <= 0.4 wrote it, untagged)
# ffmpeg's colorspace names -> the scale filter's in_color_matrix / out_color_matrix values
SCALE_MATRIX = {"bt709": "bt709", "smpte170m": "bt601", "bt470bg": "bt601", "fcc": "fcc", "smpte240m": "smpte240m",
                "bt2020nc": "bt2020", "bt2020c": "bt2020"}
_RANGES = {"tv", "pc"}
# ffmpeg's colorspace names that can stand alone in its stream report (all three tags equal)
_SPACES = {"gbr", "bt709", "fcc", "bt470bg", "smpte170m", "smpte240m", "ycgco", "bt2020nc", "bt2020c", "smpte2085",
           "chroma-derived-nc", "chroma-derived-c", "ictcp", "unknown", "reserved"}


@dataclass(frozen=True)
class Colour:
    """How a stream's pixels encode RGB: ``matrix`` (ffmpeg's colorspace name, ``gbr`` for RGB),
    ``range`` (``tv``: limited 16-235, ``pc``: full), ``primaries`` and ``transfer``."""

    matrix: str
    range: str = D.RANGE
    primaries: str = D.PRIMARIES
    transfer: str = D.TRANSFER

    def __str__(self) -> str:
        return f"{self.matrix}/{self.primaries}/{self.transfer}, {self.range} range"


@dataclass(frozen=True)
class Tags:
    """What a stream is tagged with; None where it is not (ffmpeg's ``unknown``)."""

    matrix: str | None = None
    range: str | None = None
    primaries: str | None = None
    transfer: str | None = None

    @property
    def untagged(self) -> bool:
        """No matrix: a player guesses it from the size."""
        return self.matrix is None


def is_hd(size: tuple[int, int]) -> bool:
    """Players decode an untagged stream of this (width, height) with BT.709 (else BT.601)."""
    return size[0] >= D.HD_WIDTH or size[1] >= D.HD_HEIGHT


def is_rgb(pix_fmt: str) -> bool:
    """An RGB pixel format (``rgb24``, ``bgr0``, ``gbrp10le`` ...): no YCbCr matrix applies."""
    return any(part in pix_fmt for part in ("rgb", "bgr", "gbr"))


def for_writing(size: tuple[int, int], pix_fmt: str, matrix: str | None = None) -> Colour:
    """The colour dreamvid writes a video of ``size`` in ``pix_fmt`` with; ``matrix`` overrides
    the one chosen by size (a resumed render keeps the matrix of the parts it has)."""
    if is_rgb(pix_fmt):
        return Colour("gbr", "pc")
    full = pix_fmt.startswith("yuvj")  # the JPEG formats are full range by definition
    return Colour(matrix or (D.HD_MATRIX if is_hd(size) else D.SD_MATRIX), "pc" if full else D.RANGE)


def encode_filter(colour: Colour, pix_fmt: str) -> str:
    """The ``-vf`` that turns rgb24 frames into ``pix_fmt`` with ``colour``'s matrix and range and
    tags the frames with it (the encoders write the frames' tags into the stream)."""
    convert = "" if colour.matrix == "gbr" else (
        f"scale=out_color_matrix={SCALE_MATRIX[colour.matrix]}:out_range={colour.range},")
    return (f"{convert}format={pix_fmt},setparams=range={colour.range}:colorspace={colour.matrix}"
            f":color_primaries={colour.primaries}:color_trc={colour.transfer}")


def tag_args(colour: Colour) -> list[str]:
    """The output options that tag a stream with ``colour``: for the encoder, and for the
    container when a stream is copied (joining parts, adding sound)."""
    matrix = "rgb" if colour.matrix == "gbr" else colour.matrix  # the option's name for it (setparams: gbr)
    return ["-colorspace", matrix, "-color_primaries", colour.primaries, "-color_trc", colour.transfer,
            "-color_range", colour.range]


def parse_tags(stream: str) -> Tags:
    """The tags in ffmpeg's report of a video stream, e.g. ``Video: h264 (High) ..., yuv420p(tv,
    bt709, progressive), 1280x720`` or ``yuv420p(tv, smpte170m/bt709/bt709, progressive)``."""
    found = re.search(r", [a-z0-9_]+\(([^)]*)\)", stream)
    tags: dict[str, str | None] = {}
    for item in (found[1].split(", ") if found else []):
        if item in _RANGES:
            tags["range"] = item
        elif item.count("/") == 2:
            tags["matrix"], tags["primaries"], tags["transfer"] = item.split("/")
        elif item in _SPACES:
            tags["matrix"] = tags["primaries"] = tags["transfer"] = item
    return Tags(**{key: None if value in ("unknown", "reserved") else value for key, value in tags.items()})


def for_reading(tags: Tags, size: tuple[int, int]) -> Colour:
    """How to decode a stream of ``size`` tagged ``tags``: its tags, the players' convention
    where it has none (BT.709 for HD, BT.601 below; limited range)."""
    matrix = tags.matrix or (D.HD_MATRIX if is_hd(size) else D.SD_MATRIX)
    return Colour(matrix, tags.range or D.RANGE, tags.primaries or D.PRIMARIES, tags.transfer or D.TRANSFER)


def decode_filter(colour: Colour) -> str:
    """The ``-vf`` step that turns a stream of ``colour`` into rgb24 with its matrix and range
    (none for an RGB stream, or a matrix the scale filter does not know: ffmpeg's own choice)."""
    matrix = SCALE_MATRIX.get(colour.matrix)
    if matrix is None:
        return "format=rgb24"
    return f"scale=in_color_matrix={matrix}:in_range={colour.range},format=rgb24"
