"""Photo -> network input: torchvision's ImageNet evaluation preprocessing, with Pillow only.

The course's descriptors come from torchvision's ResNet-18 fed with

    Resize(256) -> CenterCrop(224) -> ToTensor() -> Normalize(mean, std)

so a new photo must go through the same steps to land where the trained model expects:

1. resize (bilinear, Pillow's antialiased filter) so the shorter side is 256; the longer side
   is ``int(256 * long / short)`` (torchvision truncates);
2. crop the central 224 x 224, top-left corner at ``int(round((h - 224) / 2.0))`` (and the
   same for the width; Python rounds halves to even, as torchvision does);
3. scale to [0, 1] (divide by 255), then ``(x - mean) / std`` channel by channel with
   ``mean = (0.485, 0.456, 0.406)`` and ``std = (0.229, 0.224, 0.225)``.

Every way a file can fail to be a readable photo is one exception, `PhotoError`, whose message
names the file and says why in plain words.

Two deliberate differences from torchvision's own loader (``Image.open(f).convert("RGB")``):

- the EXIF orientation is applied first, so a phone photo is seen upright. torchvision ignores
  it, so for a file that carries an orientation tag the descriptor differs from one computed
  the course's way (few COCO files carry one);
- 16-bit grayscale (a 16-bit PNG, ``I;16``) is scaled to 8 bits, ``round(v / 257)``, where
  torchvision's ``convert("RGB")`` clips every value above 255 to 255 (a nearly white image).
  COCO's files are 8-bit JPEGs, so the course's descriptors are the same either way.

A photo may have at most `MAX_PHOTO_PIXELS` pixels (50 MP: a 48 MP phone photo fits), checked
from the file's header before any pixel is decoded: decoding costs about 3 bytes a pixel and
the network reads only 224 x 224 of them.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "CROP",
    "MAX_PHOTO_PIXELS",
    "MEAN",
    "RESIZE",
    "STD",
    "PhotoError",
    "PhotoSource",
    "load_photo",
    "open_photo",
    "to_tensor",
]

RESIZE = 256
CROP = 224
# 50 MP decode to 150 MB; a 48 MP phone photo (8064 x 6048) still fits
MAX_PHOTO_PIXELS = 50_000_000
# the resized image before the crop: a 1 x 100,000 strip would otherwise become 6.5 Gpx
MAX_RESIZED_PIXELS = 1 << 24
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


#: A photo file's path, or the file itself opened for binary reading (an upload kept in memory).
PhotoSource = str | os.PathLike | BinaryIO


class PhotoError(ValueError):
    """A file that cannot be read as a photo.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    reason : str
        Why, in plain words (``"not an image file"``, ``"empty file (0 bytes)"``, ...).
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _source_name(source: PhotoSource) -> Path:
    """The path errors name: the path itself, or an open file's name (``photo`` if none)."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source)
    name = getattr(source, "name", None)
    return Path(name if isinstance(name, str) and name else "photo")


def _check_file(source: PhotoSource, path: Path) -> None:
    """Refuse what is not a non-empty regular file, before Pillow gives a vaguer error."""
    if not isinstance(source, (str, os.PathLike)):
        # (no rewind after this: Image.open reads from the start whatever the position)
        if source.seek(0, os.SEEK_END) == 0:
            raise PhotoError(path, "empty file (0 bytes)")
        return
    try:
        info = path.stat()
    except FileNotFoundError as e:
        raise PhotoError(path, "no such file") from e
    except PermissionError as e:
        raise PhotoError(path, "permission denied: the file cannot be read") from e
    except OSError as e:
        raise PhotoError(path, f"the file cannot be read ({e})") from e
    if stat.S_ISDIR(info.st_mode):
        raise PhotoError(path, "is a folder, not a photo")
    if info.st_size == 0:
        raise PhotoError(path, "empty file (0 bytes)")


def _decode(source: PhotoSource, path: Path) -> Image.Image:
    """Open and fully decode ``source``, with Pillow's decompression-bomb warning as an error.

    The pixel count is read from the header and checked (against Pillow's limit and
    `MAX_PHOTO_PIXELS`) before a single pixel is decoded.
    """
    limit = Image.MAX_IMAGE_PIXELS
    bomb = f"too many pixels: over Pillow's decompression-bomb limit of {limit:,}"
    with warnings.catch_warnings():
        # Between 1x and 2x the limit Pillow only warns; a photo search has no use for such a
        # file, and decoding it could exhaust memory.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(source)
        except PermissionError as e:
            raise PhotoError(path, "permission denied: the file cannot be read") from e
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise PhotoError(path, bomb) from e
        except UnidentifiedImageError as e:
            raise PhotoError(path, "not an image file (no image format recognized)") from e
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise PhotoError(path, f"not a readable image file ({e})") from e
        pixels = image.width * image.height
        if pixels > limit:  # the warning filter is not thread-safe
            image.close()
            raise PhotoError(path, bomb)
        if pixels > MAX_PHOTO_PIXELS:
            image.close()
            raise PhotoError(
                path,
                f"too many pixels: {image.width} x {image.height} is {pixels / 1e6:.1f} MP, "
                f"over the {MAX_PHOTO_PIXELS / 1e6:.0f} MP a photo may have (scale it down)",
            )
        resized = _resized_size(image.width, image.height)
        if resized[0] * resized[1] > MAX_RESIZED_PIXELS:
            image.close()
            raise PhotoError(
                path,
                f"too elongated to describe: {image.width} x {image.height} pixels would be "
                f"resized to {resized[0]:,} x {resized[1]:,}",
            )
        with image:
            try:
                # Image.open reads only the header: decode every pixel now, so a truncated
                # or corrupt file fails here rather than later in the middle of a batch.
                image.load()
                return ImageOps.exif_transpose(image)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise PhotoError(path, bomb) from e
            except (OSError, SyntaxError, ValueError, EOFError) as e:
                raise PhotoError(path, f"truncated or corrupt image data ({e})") from e


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (``I;16*``, or ``I`` holding 16-bit samples) as 8-bit RGB.

    ``v8 = round(v16 / 257)`` maps 0..65535 onto 0..255 (65535 = 255 * 257); Pillow's own
    ``convert`` clips at 255 instead, which turns most 16-bit photos white.
    """
    # clipped after rounding: a 32-bit ``I`` sample beyond 0..65535 is black or white
    levels = np.clip(np.rint(np.asarray(image) / 257), 0, 255)
    return Image.fromarray(levels.astype(np.uint8)).convert("RGB")


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    """``image`` in RGB mode, alpha dropped (as torchvision's ``pil_loader`` does)."""
    if image.mode == "RGB":
        return image
    if image.mode == "I" or image.mode.startswith("I;16"):
        return _sixteen_bit_to_rgb(image)
    if image.mode == "P" and "transparency" in image.info:
        # P -> RGB of a palette with one alpha per colour (a PNG's tRNS) warns "should be
        # converted to RGBA images"; via RGBA the colours are the same, without the warning.
        image = image.convert("RGBA")
    try:
        return image.convert("RGB")
    except ValueError as e:
        raise PhotoError(path, f"unsupported colour mode {image.mode!r}") from e


def open_photo(source: PhotoSource) -> Image.Image:
    """Read a photo as an upright RGB Pillow image, fully decoded.

    The EXIF orientation tag is applied (a phone photo taken upright comes out upright).
    Grayscale (``L``, ``1``), palette (``P``, with or without transparency), ``CMYK`` and other
    colour modes are converted to RGB; an alpha channel (``RGBA``, ``LA``, ``PA``) is dropped,
    not composited on white, exactly as torchvision's ``Image.convert("RGB")`` does, so
    descriptors match the course's. 16-bit grayscale (``I;16``, ``I;16B``, ``I``) is scaled to
    8 bits, ``round(v / 257)``, not clipped at 255 as torchvision's loader does.

    Parameters
    ----------
    source : path-like or binary file
        The image file (any format Pillow reads: JPEG, PNG, GIF, BMP, WebP, TIFF, ...), or the
        file opened for binary reading (seekable: an upload held in memory, say); errors then
        name the file's ``name``, or ``photo``.

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``.

    Raises
    ------
    PhotoError
        If ``source`` is missing, a folder, empty, unreadable (permission), not an image,
        truncated or corrupt, over `MAX_PHOTO_PIXELS` or over Pillow's decompression-bomb limit
        (``Image.MAX_IMAGE_PIXELS``), the last two found from the header, before decoding.
    """
    path = _source_name(source)
    _check_file(source, path)
    return _to_rgb(_decode(source, path), path)


def _resized_size(width: int, height: int, short: int = RESIZE) -> tuple[int, int]:
    """torchvision's ``Resize(short)`` output (width, height): the long side is truncated."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def to_tensor(image: Image.Image) -> np.ndarray:
    """torchvision's ImageNet evaluation transform of an RGB image.

    Resize (shorter side 256, bilinear), centre crop 224 x 224, then per channel c

        x[c] = (pixel[c] / 255 - mean[c]) / std[c]

    Small images (shorter side under 256) are upscaled the same way.

    Parameters
    ----------
    image : PIL.Image.Image
        Mode ``"RGB"`` (as `open_photo` returns).

    Returns
    -------
    numpy.ndarray, shape-(3, 224, 224), float32
        Channels first, as the network takes it.

    Examples
    --------
    >>> from PIL import Image
    >>> x = to_tensor(Image.new("RGB", (300, 200), (124, 116, 104)))
    >>> x.shape, x.dtype, bool(abs(x).max() < 0.01)
    ((3, 224, 224), dtype('float32'), True)
    """
    if not isinstance(image, Image.Image) or image.mode != "RGB":
        got = image.mode if isinstance(image, Image.Image) else type(image).__name__
        raise ValueError(f"`image` must be an RGB PIL image (see open_photo), got {got}")
    size = _resized_size(*image.size)
    if size != image.size:  # torchvision returns an image already of the right size untouched
        image = image.resize(size, Image.Resampling.BILINEAR)
    width, height = image.size
    top = round((height - CROP) / 2.0)
    left = round((width - CROP) / 2.0)
    pixels = np.asarray(image.crop((left, top, left + CROP, top + CROP)))
    x = (pixels / np.float32(255) - MEAN) / STD  # uint8 / float32: float32
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_photo(source: PhotoSource) -> np.ndarray:
    """``to_tensor(open_photo(source))``: the (3, 224, 224) float32 network input of a photo.

    Raises
    ------
    PhotoError
        As `open_photo`.
    """
    return to_tensor(open_photo(source))
