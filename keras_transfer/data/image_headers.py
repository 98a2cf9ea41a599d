"""Image format and declared size from the first bytes of a file.

Formats are recognised by content, never by file name (a PNG named `.jpg` is
a PNG). The declared size is read from the header alone, so a file that
claims to be 100,000 x 100,000 pixels is refused before anything decodes it.
"""

import struct

# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC)
# share the range but are not frames.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
             0xCE, 0xCF}
# Markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xDA)}


class HeaderError(ValueError):
    """The bytes are not an image this tool can read; the message says why."""


def sniff_format(data):
    """The format named by the file's magic bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _need(data, end, what):
    if len(data) < end:
        raise HeaderError(f"truncated {what} header")


def _png_size(data):
    _need(data, 24, "PNG")
    if data[12:16] != b"IHDR":
        raise HeaderError("PNG without an IHDR chunk")
    return struct.unpack(">II", data[16:24])


def _gif_size(data):
    _need(data, 10, "GIF")
    return struct.unpack("<HH", data[6:10])


def _bmp_size(data):
    _need(data, 26, "BMP")
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes.
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # Negative height: rows stored top-down.


def _jpeg_size(data):
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            raise HeaderError("corrupt JPEG marker stream")
        marker = data[offset + 1]
        if marker == 0xFF:  # Fill byte before a marker.
            offset += 1
            continue
        if marker in _JPEG_STANDALONE:
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2:offset + 4])
        if marker in _JPEG_SOF:
            _need(data, offset + 9, "JPEG frame")
            height, width = struct.unpack(">HH", data[offset + 5:offset + 9])
            return width, height
        if marker == 0xDA:  # Start of scan before any frame header.
            break
        offset += 2 + length
    raise HeaderError("JPEG without a frame header (truncated?)")


def _webp_size(data):
    _need(data, 30, "WebP")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        b = data[21:25]
        width = 1 + (b[0] | (b[1] & 0x3F) << 8)
        height = 1 + (b[1] >> 6 | b[2] << 2 | (b[3] & 0x0F) << 10)
        return width, height
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    raise HeaderError(f"WebP with an unknown chunk {chunk!r}")


_SIZE_READERS = {"png": _png_size, "gif": _gif_size, "bmp": _bmp_size,
                 "jpeg": _jpeg_size, "webp": _webp_size}


def read_header(data):
    """Returns (format, width, height) of encoded image bytes.

    Raises HeaderError for empty data, an unknown format or a header that
    cannot be read.
    """
    if not data:
        raise HeaderError("empty file")
    image_format = sniff_format(data)
    if image_format is None:
        raise HeaderError("not a JPEG, PNG, GIF, BMP or WebP file (by content)")
    width, height = _SIZE_READERS[image_format](data)
    if width <= 0 or height <= 0:
        raise HeaderError(f"{image_format.upper()} declares size {width}x{height}")
    return image_format, int(width), int(height)
