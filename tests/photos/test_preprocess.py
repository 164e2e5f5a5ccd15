"""Tests of capstone.photos.preprocess against a step-by-step Pillow reference."""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from capstone.photos import preprocess
from capstone.photos.preprocess import PhotoError, load_photo, open_photo, to_tensor

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def reference_tensor(image: Image.Image) -> np.ndarray:
    """torchvision's Resize(256), CenterCrop(224), ToTensor, Normalize, one step at a time."""
    width, height = image.size
    if width <= height:
        new_width, new_height = 256, int(256 * height / width)
    else:
        new_width, new_height = int(256 * width / height), 256
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.BILINEAR)
    top = int(round((new_height - 224) / 2.0))  # noqa: RUF046 (spelled as torchvision does)
    left = int(round((new_width - 224) / 2.0))  # noqa: RUF046
    cropped = image.crop((left, top, left + 224, top + 224))
    pixels = np.asarray(cropped, dtype=np.float64) / 255
    return ((pixels - MEAN) / STD).transpose(2, 0, 1)


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    channels = len(Image.new(mode, (1, 1)).getbands())
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode)


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


@pytest.mark.parametrize(
    "size", [(500, 375), (375, 500), (640, 480), (256, 256), (301, 256), (224, 224), (999, 257)]
)
def test_to_tensor_matches_pillow_reference(size):
    image = noise(*size, seed=size[0])
    out = to_tensor(image)
    assert out.shape == (3, 224, 224)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, reference_tensor(image), atol=1e-5)


@pytest.mark.parametrize(
    ("size", "resized"),
    [((500, 375), (341, 256)), ((300, 257), (298, 256)), ((257, 1000), (256, 996))],
)
def test_resize_truncates_the_long_side(monkeypatch, size, resized):
    calls = []
    original = Image.Image.resize

    def spy(self, new_size, resample=None, *args, **kwargs):
        calls.append((tuple(new_size), resample))
        return original(self, new_size, resample, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    to_tensor(Image.new("RGB", size))
    assert calls == [(resized, Image.Resampling.BILINEAR)]


@pytest.mark.parametrize(("size", "left", "top"), [((301, 256), 38, 16), ((256, 303), 16, 40)])
def test_center_crop_rounds_half_to_even(size, left, top):
    # No resize (short side already 256): the crop's offset is visible in the pixels.
    # (301 - 224) / 2 = 38.5 -> 38 and (303 - 224) / 2 = 39.5 -> 40, as Python's round does.
    image = noise(*size, seed=1)
    out = to_tensor(image)
    window = np.asarray(image, np.float64)[top : top + 224, left : left + 224] / 255
    np.testing.assert_allclose(out, ((window - MEAN) / STD).transpose(2, 0, 1), atol=1e-5)


def test_constant_image_normalizes_to_the_formula():
    out = to_tensor(Image.new("RGB", (320, 240), (255, 0, 128)))
    expected = (np.array([255, 0, 128]) / 255 - MEAN) / STD
    np.testing.assert_allclose(out[:, 100, 100], expected, rtol=1e-6)


@pytest.mark.parametrize("size", [(10, 7), (1, 1), (100, 223)])
def test_small_images_are_upscaled(tmp_path, size):
    path = save(noise(*size), tmp_path / "small.png")
    out = load_photo(path)
    assert out.shape == (3, 224, 224)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference_tensor(Image.open(path)), atol=1e-5)


def test_to_tensor_refuses_other_modes():
    # the message names what it got: the image's mode, or the type of something else
    with pytest.raises(ValueError, match=r"RGB PIL image \(see open_photo\), got L$"):
        to_tensor(Image.new("L", (300, 300)))
    with pytest.raises(ValueError, match=r"RGB PIL image \(see open_photo\), got ndarray$"):
        to_tensor(np.zeros((224, 224, 3)))


def test_exif_orientation_is_applied(tmp_path):
    # Stored wide, left half red, right half blue; orientation 6 says "rotate 90 degrees
    # clockwise to display", so the upright photo is tall with red on top.
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = (255, 0, 0)
    pixels[:, 40:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(Image.fromarray(pixels), tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    image = open_photo(path)
    assert image.size == (40, 80)
    top, bottom = np.asarray(image, np.int64)[10, 20], np.asarray(image, np.int64)[70, 20]
    assert top[0] > 200 and top[2] < 50, top
    assert bottom[2] > 200 and bottom[0] < 50, bottom


def palette_image(transparency: bool) -> tuple[Image.Image, dict]:
    """A 40 x 30 four-colour palette image; colour 1 (red) transparent if asked."""
    indices = np.random.default_rng(3).integers(0, 4, (30, 40), np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (768 - 12))
    return image, {"transparency": 1} if transparency else {}


def mode_image(mode: str) -> tuple[Image.Image, dict]:
    """A 40 x 30 image in ``mode`` ("P+transparency" for a palette with a transparent colour),
    and the options to save it with."""
    if mode.startswith("P"):
        return palette_image(transparency=mode.endswith("transparency"))
    samples = np.random.default_rng(0).integers(0, 65536, (30, 40))
    if mode == "I;16B":
        return Image.frombytes(mode, (40, 30), samples.astype(">u2").tobytes()), {}
    if mode in ("I", "I;16"):
        return Image.frombytes("I;16", (40, 30), samples.astype("<u2").tobytes()).convert(mode), {}
    if mode == "1":
        return Image.fromarray(samples % 2 == 0), {}
    return noise(40, 30, mode), {}


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [
        ("L", "png"),
        ("1", "png"),
        ("P", "png"),
        ("P+transparency", "png"),
        ("P+transparency", "gif"),
        ("RGBA", "png"),
        ("LA", "png"),
        ("CMYK", "jpg"),
        ("CMYK", "tif"),
        ("I;16", "png"),
        ("I;16B", "tif"),
        ("I", "tif"),
        ("RGB", "webp"),
        ("RGB", "bmp"),
    ],
)
def test_every_mode_becomes_rgb(tmp_path, mode, suffix):
    image, options = mode_image(mode)
    path = save(image, tmp_path / f"photo.{suffix}", **options)
    assert Image.open(path).mode == mode.split("+")[0] or suffix == "gif"
    photo = open_photo(path)
    assert photo.mode == "RGB"
    assert photo.size == (40, 30)
    out = to_tensor(photo)
    assert out.shape == (3, 224, 224)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.parametrize(("mode", "dtype"), [("I;16", "<u2"), ("I;16B", ">u2")])
def test_sixteen_bits_are_scaled_not_clipped(tmp_path, mode, dtype):
    samples = np.array([[0, 257, 25700, 65535]], dtype=np.uint16)
    image = Image.frombytes(mode, (4, 1), samples.astype(dtype).tobytes())
    path = save(image, tmp_path / ("gray.png" if mode == "I;16" else "gray.tif"))
    rgb = np.asarray(open_photo(path))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 100, 255])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    # torchvision's loader, Image.convert("RGB"), clips instead: the documented difference
    clipped = np.asarray(Image.open(path).convert("RGB"))[0, :, 0]
    np.testing.assert_array_equal(clipped, [0, 255, 255, 255])
    assert "clips every value above 255" in preprocess.__doc__


def test_sixteen_bits_round_to_the_nearest_eight_bit_level(tmp_path):
    # v / 257 rounded: 128 -> 0, 129 -> 1, 1000 -> 4 (multiples of 257 alone cannot tell a
    # division from a product that wraps around 256); a 32-bit "I" photo beyond 0..65535 is
    # clipped to black and white
    samples = np.array([[-1000, 0, 128, 129, 257, 1000, 25700, 65535, 70000]], np.int32)
    path = save(Image.fromarray(samples, mode="I"), tmp_path / "gray.tif")
    assert Image.open(path).mode == "I"
    rgb = np.asarray(open_photo(path))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 0, 0, 1, 1, 4, 100, 255, 255])


def test_an_rgb_photo_is_not_copied(tmp_path, monkeypatch):
    # converting RGB to RGB would copy every pixel: 150 MB more for a 50 MP photo
    path = save(noise(40, 30), tmp_path / "photo.png")
    converted = []
    original_convert = Image.Image.convert

    def convert(self, *args, **kwargs):
        converted.append(self.mode)
        return original_convert(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", convert)
    open_photo(path)
    assert converted == []


def test_alpha_is_dropped_not_composited(tmp_path):
    path = save(Image.new("RGBA", (8, 8), (10, 20, 30, 0)), tmp_path / "clear.png")
    np.testing.assert_array_equal(np.asarray(open_photo(path))[0, 0], [10, 20, 30])


@pytest.mark.parametrize("alphas", [None, bytes([255, 128, 0, 255])])
def test_palette_transparency_keeps_palette_colours(tmp_path, alphas):
    # one transparent colour (an index), or one alpha per colour (bytes, a PNG's tRNS), for
    # which Pillow's own P -> RGB warns; neither warns here
    image, options = palette_image(transparency=True)
    path = save(image, tmp_path / "p.png", transparency=alphas or options["transparency"])
    assert isinstance(Image.open(path).info["transparency"], bytes if alphas else int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        photo = np.asarray(open_photo(path))
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]])
    np.testing.assert_array_equal(photo, palette[np.asarray(image)])


# -- bad input: one exception, naming the file and the reason ----------------------------------


def truncated_jpeg(path: Path) -> Path:
    save(noise(300, 200, seed=2), path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_text("these are not the pixels you are looking for"), "not an image"),
        (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
        (truncated_jpeg, "truncated or corrupt"),
        (lambda p: p.mkdir(), "is a folder, not a photo"),
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50), "not"),
    ],
)
def test_bad_files_raise_photo_error(tmp_path, make, reason):
    path = tmp_path / "holiday.jpg"
    make(path)
    with pytest.raises(PhotoError, match=re.escape(reason)) as info:
        open_photo(path)
    assert info.value.reason.startswith(reason)  # the reason first, as the message says it
    assert "holiday.jpg" in str(info.value)
    assert info.value.path == path
    assert isinstance(info.value, ValueError)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_chunk(path: Path, kind: bytes, data: bytes) -> Path:
    """A 40 x 30 PNG with one more chunk right after its header (8 + 25 bytes)."""
    buffer = io.BytesIO()
    noise(40, 30).save(buffer, "PNG")
    png = buffer.getvalue()
    path.write_bytes(png[:33] + png_chunk(kind, data) + png[33:])
    return path


def test_a_file_the_system_cannot_inspect(tmp_path):
    path = tmp_path / ("holiday" * 40 + ".jpg")  # over the 255 bytes a file name may have
    with pytest.raises(OSError) as system:
        path.stat()
    with pytest.raises(PhotoError) as info:
        open_photo(path)
    assert info.value.path == path
    assert info.value.reason == f"the file cannot be read ({system.value})"
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("step", ["stat", "open"])
def test_unreadable_file(tmp_path, monkeypatch, step):
    # root reads any file, so the refusal is injected: at the first look (stat) or at the
    # opening (a file whose permission changed in between)
    path = save(noise(30, 30), tmp_path / "secret.png")
    denial = PermissionError(13, "Permission denied", str(path))
    original_stat = Path.stat

    def stat(self, *args, **kwargs):
        if self == path:
            raise denial
        return original_stat(self, *args, **kwargs)

    def denied(*args, **kwargs):
        raise denial

    if step == "stat":
        monkeypatch.setattr(Path, "stat", stat)
    else:
        monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(PhotoError) as info:
        open_photo(path)
    assert str(info.value) == f"{path}: permission denied: the file cannot be read"
    assert info.value.__cause__ is denial


@pytest.mark.parametrize(("limit", "pixels"), [(1000, 3000), (1000, 1500)])
def test_decompression_bomb_is_refused(tmp_path, monkeypatch, limit, pixels):
    # above twice the limit Pillow raises; between once and twice it only warns: both refused
    path = save(Image.new("RGB", (pixels // 10, 10)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(PhotoError) as info:
        open_photo(path)
    assert str(info.value) == (
        f"{path}: too many pixels: over Pillow's decompression-bomb limit of 1,000"
    )


def icns_icon(path: Path, png: Image.Image) -> Path:
    """A Mac OS icon file whose one entry, a 16 x 16 icon by its type, holds ``png``."""
    buffer = io.BytesIO()
    png.save(buffer, "PNG")
    entry = b"icp4" + struct.pack(">I", 8 + len(buffer.getvalue())) + buffer.getvalue()
    path.write_bytes(b"icns" + struct.pack(">I", 8 + len(entry)) + entry)
    return path


@pytest.mark.parametrize("pixels", [3000, 1500])
def test_a_bomb_found_only_when_decoding_is_refused(tmp_path, monkeypatch, pixels):
    # the header says 16 x 16; Pillow checks the embedded PNG's size only when it decodes it
    path = icns_icon(tmp_path / "icon.icns", Image.new("RGB", (pixels // 10, 10)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert Image.open(path).size == (16, 16)
    with pytest.raises(PhotoError) as info:
        open_photo(path)
    assert str(info.value) == (
        f"{path}: too many pixels: over Pillow's decompression-bomb limit of 1,000"
    )


def test_a_file_pillow_fails_to_open(tmp_path):
    # a PNG whose animation chunk is cut short: Pillow knows the format but raises ValueError
    path = png_with_chunk(tmp_path / "animated.png", b"acTL", b"\0\0\0")
    with pytest.raises(PhotoError) as info:
        open_photo(path)
    assert str(info.value) == (
        f"{path}: not a readable image file (APNG contains truncated acTL chunk)"
    )


def test_pillow_warnings_other_than_the_bomb_stay_warnings(tmp_path):
    # an animation chunk that says 0 frames: Pillow warns and reads the still image
    path = png_with_chunk(tmp_path / "animated.png", b"acTL", struct.pack(">II", 0, 0))
    with pytest.warns(UserWarning, match="Invalid APNG"):
        photo = open_photo(path)
    np.testing.assert_array_equal(np.asarray(photo), np.asarray(noise(40, 30)))


def test_an_unsupported_colour_mode(tmp_path, monkeypatch):
    # Pillow before 9.3 could not convert LAB to RGB (a LAB TIFF opens); today's converts
    # everything a file holds, so the older refusal is injected
    path = save(noise(40, 30, "LAB"), tmp_path / "lab.tif")
    original_convert = Image.Image.convert

    def convert(self, mode=None, *args, **kwargs):
        if self.mode == "LAB":
            raise ValueError("conversion from LAB to RGB not supported")
        return original_convert(self, mode, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", convert)
    with pytest.raises(PhotoError) as info:
        open_photo(path)
    assert str(info.value) == f"{path}: unsupported colour mode 'LAB'"
    assert isinstance(info.value.__cause__, ValueError)


def test_photo_error_attributes():
    error = PhotoError("a/b.jpg", "empty file (0 bytes)")
    assert (error.path, error.reason) == (Path("a/b.jpg"), "empty file (0 bytes)")
    assert str(error) == f"{Path('a/b.jpg')}: empty file (0 bytes)"


@pytest.mark.parametrize(
    ("size", "resized"), [((1, 70_000), "256 x 17,920,000"), ((70_000, 1), "17,920,000 x 256")]
)
def test_a_strip_too_elongated_to_resize_is_refused(tmp_path, size, resized):
    path = save(Image.new("RGB", size, (10, 20, 30)), tmp_path / "strip.png")
    with pytest.raises(PhotoError) as info:
        open_photo(path)
    width, height = size
    assert str(info.value) == (
        f"{path}: too elongated to describe: {width} x {height} pixels would be resized to "
        f"{resized}"
    )


@pytest.mark.parametrize(
    ("limit", "pixels"),
    [
        ("Image.MAX_IMAGE_PIXELS", 40 * 30),
        ("MAX_PHOTO_PIXELS", 40 * 30),
        ("MAX_RESIZED_PIXELS", 341 * 256),  # 40 x 30 is resized to 341 x 256
    ],
)
def test_a_photo_at_a_pixel_limit_is_read_one_pixel_over_is_refused(
    tmp_path, monkeypatch, limit, pixels
):
    path = save(noise(40, 30), tmp_path / "photo.png")
    owner = Image if limit.startswith("Image.") else preprocess
    monkeypatch.setattr(owner, limit.removeprefix("Image."), pixels)
    assert open_photo(path).size == (40, 30)
    monkeypatch.setattr(owner, limit.removeprefix("Image."), pixels - 1)
    with pytest.raises(PhotoError, match=r"too many pixels|too elongated"):
        open_photo(path)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_pixel_limit_holds_without_the_warning_filter(tmp_path, monkeypatch):
    """Between 1x and 2x Pillow's limit Pillow only warns; the explicit check refuses it even
    if another thread's warning filter was just removed (warnings are process-wide)."""
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30_000)  # 40,000 px: between 1x and 2x
    monkeypatch.setattr(warnings, "simplefilter", lambda *args, **kwargs: None)
    with pytest.raises(PhotoError, match="decompression-bomb limit of 30,000"):
        open_photo(path)


def test_a_photo_over_the_pixel_cap_is_refused_from_its_header(tmp_path):
    """An 8035 x 6229 PNG (50.05 MP, under Pillow's 89 MP limit) is refused before decoding:
    it holds no pixel data, so decoding it would fail another way."""
    ihdr = struct.pack(">IIBBBBB", 8035, 6229, 1, 0, 0, 0, 0)  # one bit a pixel, grayscale
    path = tmp_path / "huge.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"")
        + png_chunk(b"IEND", b"")
    )  # fmt: skip
    assert 8035 * 6229 < Image.MAX_IMAGE_PIXELS
    with pytest.raises(PhotoError) as info:
        open_photo(path)
    # 50,050,015 pixels: 50.1 MP at one decimal (dividing by a million exactly)
    assert str(info.value) == (
        f"{path}: too many pixels: 8035 x 6229 is 50.1 MP, over the 50 MP a photo may have "
        "(scale it down)"
    )
    assert 8064 * 6048 <= preprocess.MAX_PHOTO_PIXELS  # a 48 MP phone photo is read


def test_an_open_file_is_read_like_its_path(tmp_path):
    path = save(noise(90, 70, seed=4), tmp_path / "upload.png")
    in_memory = io.BytesIO(path.read_bytes())
    np.testing.assert_array_equal(load_photo(in_memory), load_photo(path))
    with open(path, "rb") as file:
        np.testing.assert_array_equal(load_photo(file), load_photo(path))
    with pytest.raises(PhotoError, match=r"^photo: empty file") as info:
        open_photo(io.BytesIO())
    assert info.value.reason == "empty file (0 bytes)"
    with pytest.raises(PhotoError, match=r"^photo: not an image file"):
        open_photo(io.BytesIO(b"no pixels here"))
    # an open file's errors name the file
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no pixels here")
    with open(bad, "rb") as file, pytest.raises(PhotoError) as info:
        open_photo(file)
    assert info.value.path == bad
    assert str(info.value) == f"{bad}: not an image file (no image format recognized)"
    # a file opened from a descriptor is named by its number: errors say "photo"
    empty = tmp_path / "empty.png"
    empty.touch()
    with open(os.open(empty, os.O_RDONLY), "rb") as file, pytest.raises(PhotoError) as info:
        assert file.name == file.fileno()
        open_photo(file)
    assert str(info.value) == "photo: empty file (0 bytes)"


def test_a_portrait_photo_opens(tmp_path):
    # taller than wide: resized to 256 wide, 341 high, nothing like "too elongated"
    path = save(noise(30, 40), tmp_path / "portrait.png")
    assert open_photo(path).size == (30, 40)
