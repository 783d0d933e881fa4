"""Image loading and preprocessing, shared by calibration (host) and classification (device).

One implementation on the device floor, so that int8 calibration and on-device classification see
exactly the same pixels.
"""

import math
import os
import warnings

import numpy as np

from device_bench.errors import EdgekitError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

# Named preprocessing modes: what each model family expects, as (mean, std, colour order) in pixel
# units; the model sees (pixel - mean) / std.
MODES = {
    "tf": {"mean": [127.5] * 3, "std": [127.5] * 3, "color_order": "RGB"},
    "torch": {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "color_order": "RGB"},
    "caffe": {"mean": [103.939, 116.779, 123.68], "std": [1.0] * 3, "color_order": "BGR"},
}


def make_preprocessing(mode=None, mean=None, std=None, crop_fraction=1.0, color_order=None):
    """A preprocessing record for a manifest, from a named mode or an explicit mean and std."""
    if mode is not None and (mean is not None or std is not None):
        raise EdgekitError(f"give either a preprocessing mode or --mean/--std, not both (got mode {mode!r})")
    if mode is not None:
        if mode not in MODES:
            raise EdgekitError(f"unknown preprocessing mode {mode!r}; choose one of {', '.join(MODES)}")
        base = dict(MODES[mode], mode=mode)
    elif mean is not None and std is not None:
        base = {"mode": "custom", "mean": _per_channel(mean, "mean"), "std": _per_channel(std, "std"),
                "color_order": "RGB"}
    else:
        raise EdgekitError("the model's pixel scaling is unknown: give --mean and --std, or --preprocessing")
    if any(s == 0 for s in base["std"]):
        raise EdgekitError(f"--std must not be zero, got {base['std']}")
    if not 0.1 <= crop_fraction <= 1.0:
        raise EdgekitError(f"crop fraction must be in [0.1, 1], got {crop_fraction}")
    if color_order:
        base["color_order"] = color_order
    base.update(resize="bilinear", crop_fraction=float(crop_fraction))
    return base


def parse_floats(text, what):
    """'127.5' or '123.7,116.3,103.5' -> list of floats; EdgekitError naming the option otherwise."""
    if text is None:
        return None
    try:
        values = [float(v) for v in str(text).replace(",", " ").split()]
    except ValueError:
        raise EdgekitError(f"--{what} takes numbers separated by commas, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise EdgekitError(f"--{what} takes finite numbers separated by commas, got {text!r}")
    return values


def _per_channel(value, what):
    try:
        values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    except (TypeError, ValueError):
        raise EdgekitError(f"--{what} takes one number or three, got {value!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise EdgekitError(f"--{what} takes finite numbers, got {values}")
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise EdgekitError(f"--{what} takes one value or three (per channel), got {values}")
    return values


def list_images(paths):
    """Expand files and folders (walked recursively, in sorted order) into image paths. A folder that
    cannot be read stays in the list, so that loading it becomes that item's error, not a silent gap."""
    out = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path, onerror=lambda e: out.append(e.filename)):
                dirs.sort()
                out += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        else:
            out.append(path)
    return out


def load_image(path, channels=3):
    """Open an image file as an RGB (or L, for one-channel models) Pillow image, not yet resized.

    Honours EXIF orientation, takes the first frame of an animation, flattens transparency onto
    white and maps 16-bit and float images to 8 bits. Raises EdgekitError naming the file.
    """
    Image, ImageOps = pillow()
    if not os.path.exists(path):
        raise EdgekitError(f"{path}: no such file")
    if os.path.isdir(path):
        try:
            os.listdir(path)
        except OSError as e:
            raise EdgekitError(f"{path}: cannot read this folder ({e.strerror})") from None
        raise EdgekitError(f"{path}: is a folder, not an image")
    if not os.path.isfile(path):
        raise EdgekitError(f"{path}: not a regular file")
    if os.path.getsize(path) == 0:
        raise EdgekitError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.seek(0)
                im.load()
                im = ImageOps.exif_transpose(im)
                return _to_8bit(im, channels, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise EdgekitError(f"{path}: refused as a possible decompression bomb ({e})") from None
    except Image.UnidentifiedImageError:
        raise EdgekitError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise EdgekitError(f"{path}: corrupt or truncated image ({e})") from None


def pillow():
    """Pillow's Image and ImageOps; a device without Pillow is told how to get it."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise EdgekitError("reading images needs Pillow: pip install pillow") from None
    return Image, ImageOps


def _to_8bit(im, channels, path):
    Image, _ = pillow()

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if not np.isfinite(arr).all():  # NaN or infinite pixels have no 8-bit value
            raise EdgekitError(f"{path}: float image with NaN or infinite pixels")
        top = 1.0 if im.mode == "F" and arr.max() <= 1.0 else (255.0 if arr.max() <= 255 else 65535.0)
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return im.convert("L" if channels == 1 else "RGB")


def preprocess(image, height, width, prep):
    """Centre-crop, resize and normalise a Pillow image into a float32 HxWxC array."""
    Image, _ = pillow()

    w, h = image.size
    frac = prep.get("crop_fraction", 1.0)
    # the largest box with the target's aspect ratio, scaled by the crop fraction, centred
    scale = min(w / width, h / height) * frac
    bw, bh = width * scale, height * scale
    # clamped: at crop 1.0 rounding can put an edge at -1e-14 or w + 1e-14, which Pillow refuses
    box = (max(0.0, (w - bw) / 2), max(0.0, (h - bh) / 2), min(float(w), (w + bw) / 2), min(float(h), (h + bh) / 2))
    resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[
        prep.get("resize", "bilinear")]
    arr = np.asarray(image.resize((width, height), resample=resample, box=box), dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[-1] == 3 and prep.get("color_order", "RGB") == "BGR":
        arr = arr[:, :, ::-1]
    mean = np.asarray(prep["mean"], np.float32)[: arr.shape[-1]]
    std = np.asarray(prep["std"], np.float32)[: arr.shape[-1]]
    return (arr - mean) / std


def quantize(x, dtype, scale, zero_point):
    """Float array to the input tensor's type, with its own scale and zero point (never /255)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return x.astype(dtype)
    if not scale:
        raise EdgekitError(f"input tensor is {dtype.name} but has no quantization scale")
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y, scale, zero_point):
    """Output tensor to float with its own scale and zero point."""
    if np.dtype(y.dtype).kind == "f" or not scale:
        return y.astype(np.float32)
    return (y.astype(np.float32) - zero_point) * scale


def load_input(path, input_shape, prep):
    """One image file, ready as a float32 [1,H,W,C] batch for a model with this input shape."""
    _, height, width, channels = input_shape
    return preprocess(load_image(path, channels), height, width, prep)[None]
