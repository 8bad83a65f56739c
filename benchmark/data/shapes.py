"""Procedural "shapes" data for the bundled tiny model (pure PIL + numpy, fully deterministic).

Each image (80x80 RGB) shows one shape (circle, square, triangle, star) in one saturated colour
(red, green, blue, yellow), small or large, in one of five positions, on a random light or dark
grey/tinted background with mild noise.  The 16 (shape, colour) pairs are the classes; captions in
English, Portuguese and Chinese describe size, colour, shape and position.

All randomness comes from the ``numpy.random.Generator`` passed in (or seeded from ``seed``):
there is no global state, so the same seed always gives the same images and captions.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 80
_SUPERSAMPLE = 3  # shapes are drawn at 3x and downsampled for anti-aliasing

LANGUAGES = ("en", "pt", "zh")
SHAPES = ("circle", "square", "triangle", "star")
COLOURS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "center")

#: class index -> (shape, colour); class index = position in this list.
CLASS_KEYS: list[tuple[str, str]] = [(s, c) for s in SHAPES for c in COLOURS]

# Saturated colours: (low, high) per RGB channel, in 0..255.  Swapping R and B turns red into
# blue (and back) and yellow into cyan, so a model must use the colour channels in order.
_COLOUR_RANGES = {
    "red": ((205, 255), (0, 45), (0, 45)),
    "green": ((0, 45), (175, 235), (0, 45)),
    "blue": ((0, 45), (0, 55), (205, 255)),
    "yellow": ((215, 255), (205, 250), (0, 45)),
}

# Position centres as fractions of the image side (x, y).
_POSITION_CENTRES = {
    "top left": (0.275, 0.275),
    "top right": (0.725, 0.275),
    "bottom left": (0.275, 0.725),
    "bottom right": (0.725, 0.725),
    "center": (0.5, 0.5),
}
_POSITION_JITTER = 0.035  # +- fraction of the side
_RADIUS = {"small": (8.0, 10.5), "large": (15.5, 19.0)}  # pixels at 80x80

# ---------------------------------------------------------------------------------------------
# Words per language
# ---------------------------------------------------------------------------------------------

_EN_SHAPE = {s: s for s in SHAPES}
_EN_POS = {p: p for p in POSITIONS}

# Portuguese: grammatical gender of each shape noun, and colour/size adjectives by gender.
_PT_SHAPE = {"circle": "círculo", "square": "quadrado", "triangle": "triângulo", "star": "estrela"}
_PT_FEMININE = {"star"}
_PT_COLOUR = {  # (masculine, feminine)
    "red": ("vermelho", "vermelha"),
    "green": ("verde", "verde"),
    "blue": ("azul", "azul"),
    "yellow": ("amarelo", "amarela"),
}
_PT_SIZE = {"small": ("pequeno", "pequena"), "large": ("grande", "grande")}
_PT_POS = {
    "top left": "no canto superior esquerdo",
    "top right": "no canto superior direito",
    "bottom left": "no canto inferior esquerdo",
    "bottom right": "no canto inferior direito",
    "center": "no centro",
}

_ZH_SHAPE = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形"}
_ZH_COLOUR = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色"}
_ZH_SIZE = {"small": "小", "large": "大"}
_ZH_POS = {"top left": "左上角", "top right": "右上角", "bottom left": "左下角", "bottom right": "右下角", "center": "中间"}


def class_name(shape: str, colour: str, lang: str) -> str:
    """Class name of (shape, colour) in ``lang``, e.g. "red star", "estrela vermelha", "红色星形"."""
    if lang == "en":
        return f"{colour} {_EN_SHAPE[shape]}"
    if lang == "pt":
        g = 1 if shape in _PT_FEMININE else 0
        return f"{_PT_SHAPE[shape]} {_PT_COLOUR[colour][g]}"
    if lang == "zh":
        return f"{_ZH_COLOUR[colour]}{_ZH_SHAPE[shape]}"
    raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")


def class_names(lang: str) -> list[str]:
    """The 16 class names in ``lang``, in ``CLASS_KEYS`` order."""
    return [class_name(s, c, lang) for s, c in CLASS_KEYS]


def captions(attrs: dict) -> dict[str, list[str]]:
    """Two descriptive captions per language for an attributes dict (shape, colour, size, position)."""
    shape, colour, size, pos = attrs["shape"], attrs["colour"], attrs["size"], attrs["position"]

    en_where = "center" if pos == "center" else f"{pos} corner"
    en = [
        f"a {size} {colour} {shape} in the {en_where}.",
        f"a {colour} {shape}, {size}, at the {pos}.",
    ]

    g = 1 if shape in _PT_FEMININE else 0
    art = "uma" if g else "um"
    noun, adj, sz, where = _PT_SHAPE[shape], _PT_COLOUR[colour][g], _PT_SIZE[size][g], _PT_POS[pos]
    pt = [
        f"{art} {noun} {adj} {sz} {where}.",
        # "cor" is feminine, so the colour after "de cor" is always in the feminine form
        f"{art} {noun} {sz} de cor {_PT_COLOUR[colour][1]}, {where}.",
    ]

    zs, zc, zz, zp = _ZH_SHAPE[shape], _ZH_COLOUR[colour], _ZH_SIZE[size], _ZH_POS[pos]
    zh = [
        f"{zp}有一个{zz}的{zc}{zs}",
        f"一个{zz}的{zc}{zs}，位于{zp}",
    ]
    return {"en": en, "pt": pt, "zh": zh}


def all_attribute_combinations() -> list[dict]:
    """Every (shape, colour, size, position) combination as an attributes dict (160 of them)."""
    out = []
    for (shape, colour), size, pos in itertools.product(CLASS_KEYS, SIZES, POSITIONS):
        out.append({"shape": shape, "colour": colour, "size": size, "position": pos,
                    "label": CLASS_KEYS.index((shape, colour))})
    return out


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

def _polygon(cx: float, cy: float, radii: list[float], angles: list[float]) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in zip(radii, angles)]


def _shape_mask(shape: str, cx: float, cy: float, radius: float, rotation: float) -> np.ndarray:
    """Anti-aliased coverage mask (float32, HxW in 0..1) of one shape."""
    k = _SUPERSAMPLE
    big = Image.new("L", (IMAGE_SIZE * k, IMAGE_SIZE * k), 0)
    d = ImageDraw.Draw(big)
    cx, cy, r = cx * k, cy * k, radius * k
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "square":
        h = 0.85 * r * math.sqrt(2)  # half-diagonal, so the half-side is 0.85 r
        d.polygon(_polygon(cx, cy, [h] * 4, [rotation + math.pi / 4 + i * math.pi / 2 for i in range(4)]), fill=255)
    elif shape == "triangle":
        R = 1.15 * r
        # pointing up, centroid slightly lowered so the shape is visually centred
        d.polygon(_polygon(cx, cy + 0.15 * R, [R] * 3,
                           [rotation - math.pi / 2 + i * 2 * math.pi / 3 for i in range(3)]), fill=255)
    elif shape == "star":
        R = 1.2 * r
        radii = [R if i % 2 == 0 else 0.45 * R for i in range(10)]
        d.polygon(_polygon(cx, cy, radii, [rotation - math.pi / 2 + i * math.pi / 5 for i in range(10)]), fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    small = big.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _background(rng: np.random.Generator) -> np.ndarray:
    """Light or dark grey, mildly tinted, with a gentle linear gradient (float32 HxWx3 in 0..1)."""
    if rng.random() < 0.5:
        level = rng.uniform(0.03, 0.35)  # dark
    else:
        level = rng.uniform(0.62, 0.95)  # light
    tint = rng.uniform(-0.07, 0.07, size=3)
    base = np.clip(level + tint, 0.0, 1.0).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    amp = rng.uniform(0.0, 0.12)
    t = np.linspace(-0.5, 0.5, IMAGE_SIZE, dtype=np.float32)
    grad = amp * (math.cos(theta) * t[None, :] + math.sin(theta) * t[:, None])
    return base[None, None, :] + grad[:, :, None]


def draw(rng: np.random.Generator, label: Optional[int] = None) -> tuple[Image.Image, dict]:
    """Draw one 80x80 RGB image; return it with its attributes.

    Attributes: ``shape``, ``colour``, ``size`` ("small"/"large"), ``position`` (one of
    ``POSITIONS``) and ``label`` (index into ``CLASS_KEYS``).  ``label`` may be given to fix the
    class; everything else is drawn from ``rng``.
    """
    if label is None:
        label = int(rng.integers(len(CLASS_KEYS)))
    shape, colour = CLASS_KEYS[label]
    size = SIZES[int(rng.integers(len(SIZES)))]
    position = POSITIONS[int(rng.integers(len(POSITIONS)))]

    fx, fy = _POSITION_CENTRES[position]
    cx = (fx + rng.uniform(-_POSITION_JITTER, _POSITION_JITTER)) * IMAGE_SIZE
    cy = (fy + rng.uniform(-_POSITION_JITTER, _POSITION_JITTER)) * IMAGE_SIZE
    radius = rng.uniform(*_RADIUS[size])
    rotation = math.radians(rng.uniform(-12.0, 12.0)) if shape != "circle" else 0.0
    rgb = np.array([rng.uniform(lo, hi) for lo, hi in _COLOUR_RANGES[colour]], dtype=np.float32) / 255.0

    bg = _background(rng)
    alpha = _shape_mask(shape, cx, cy, radius, rotation)[:, :, None]
    img = bg * (1.0 - alpha) + rgb[None, None, :] * alpha
    noise_sigma = rng.uniform(0.01, 0.04)
    img = img + rng.normal(0.0, noise_sigma, size=img.shape).astype(np.float32)
    img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)

    attrs = {"shape": shape, "colour": colour, "size": size, "position": position, "label": label}
    return Image.fromarray(img, mode="RGB"), attrs


def _balanced_labels(n: int, rng: np.random.Generator) -> list[int]:
    labels = np.arange(n) % len(CLASS_KEYS)
    return [int(x) for x in rng.permutation(labels)]


def classification_samples(n: int, seed: int) -> list[tuple[Image.Image, int]]:
    """``n`` (image, class index) pairs, classes balanced (n // 16 each, rest spread), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for label in _balanced_labels(n, rng):
        img, attrs = draw(rng, label)
        out.append((img, attrs["label"]))
    return out


def caption_samples(n: int, seed: int) -> list[tuple[Image.Image, dict[str, list[str]]]]:
    """``n`` (image, {"en"|"pt"|"zh": [caption, caption]}) pairs, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for label in _balanced_labels(n, rng):
        img, attrs = draw(rng, label)
        out.append((img, captions(attrs)))
    return out
