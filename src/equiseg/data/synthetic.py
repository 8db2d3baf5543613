"""Butterfly-like images with exact masks, generated in-process so the pipeline runs offline.

Each species (a "shape family") fixes the wing geometry (fore/hind wing length, width, angle,
taper, scalloped edges, tails) and the wing paint (base colours, gradient, bands, spots,
eyespots, veins, a dotted dark margin); each image jitters these, scales, places and rotates one
butterfly over a cluttered background. Everything is evaluated analytically on the pixel grid in
the butterfly's own frame, so the mask is exact and needs no warping, and mirroring the lateral
coordinate (|u|) makes every butterfly bilaterally symmetric by construction.

Foreground and background share colours (the clutter borrows wing colours), so colour alone does
not separate them; they differ in statistics instead, as in photographs: the butterfly is sharp,
flat-painted and outlined, the background is out of focus, mottled and grainy.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

ORIENTATIONS = ("upright", "uniform")  # butterflies tilted a little (jitter_deg), or turned anyhow

@dataclass(frozen=True)
class WingStyle:
    """One wing lobe in the butterfly frame (units of the butterfly radius) and its paint."""

    anchor: tuple[float, float]  # where the wing meets the body (u, w)
    angle_deg: float  # direction of the wing axis, from the lateral axis towards the head
    length: float
    width: float
    taper: float  # > 1 puts the widest part towards the tip (forewings), < 1 towards the base
    scallop_k: int  # number of edge lobes
    scallop_amp: float
    base: tuple[float, float, float]  # RGB 0..1 at the base
    tip: tuple[float, float, float]  # RGB 0..1 at the tip (gradient)
    band_at: float  # position of a band along the wing axis (0 base .. 1 tip), < 0 = none
    band_width: float
    band_colour: tuple[float, float, float]
    spots: tuple[tuple[float, float, float], ...]  # (s, t, radius) in wing coordinates
    spot_colour: tuple[float, float, float]
    eyespot: bool
    veins: int  # number of dark veins, 0 = none
    margin: float  # width of the dark margin as a fraction of the wing, 0 = none
    margin_dots: int  # light dots along the margin, 0 = none
    tail: float  # length of a swallowtail (hind wings), 0 = none


@dataclass(frozen=True)
class SpeciesStyle:
    """A shape family: the geometry and paint shared by all butterflies of one species."""

    fore: WingStyle
    hind: WingStyle
    body_colour: tuple[float, float, float]


def _random_colour(rng: np.random.Generator, saturation=(0.5, 1.0), value=(0.55, 1.0),
                   hue: float | None = None) -> tuple:
    hue = rng.uniform(0, 1) if hue is None else hue
    rgb = colorsys.hsv_to_rgb(hue % 1, rng.uniform(*saturation), rng.uniform(*value))
    return tuple(float(c) for c in rgb)


def _dark(rng: np.random.Generator) -> tuple:
    return _random_colour(rng, saturation=(0.0, 0.6), value=(0.04, 0.2))


def _wing_style(rng: np.random.Generator, fore: bool, base: tuple, accent: tuple) -> WingStyle:
    n_spots = int(rng.integers(0, 4))
    spots = tuple((float(rng.uniform(0.35, 0.85)), float(rng.uniform(-0.5, 0.5)),
                   float(rng.uniform(0.07, 0.14))) for _ in range(n_spots))
    return WingStyle(
        anchor=(0.04, 0.08) if fore else (0.04, -0.06),
        angle_deg=float(rng.uniform(15, 45) if fore else rng.uniform(-70, -35)),
        length=float(rng.uniform(0.85, 1.0) if fore else rng.uniform(0.55, 0.78)),
        width=float(rng.uniform(0.45, 0.65) if fore else rng.uniform(0.5, 0.75)),
        taper=float(rng.uniform(1.1, 1.8) if fore else rng.uniform(0.7, 1.2)),
        scallop_k=int(rng.integers(4, 10)),
        scallop_amp=float(rng.choice([0.0, rng.uniform(0.02, 0.08)])),
        base=base,
        tip=tuple(float(np.clip(c * rng.uniform(0.5, 1.2), 0, 1)) for c in base),
        band_at=float(rng.choice([-1.0, rng.uniform(0.4, 0.8)])),
        band_width=float(rng.uniform(0.06, 0.14)),
        band_colour=accent,
        spots=spots,
        spot_colour=accent if rng.random() < 0.5 else _dark(rng),
        eyespot=bool(rng.random() < 0.35),
        veins=int(rng.choice([0, 0, rng.integers(4, 8)])),
        margin=float(rng.choice([0.0, rng.uniform(0.12, 0.22)])),
        margin_dots=int(rng.choice([0, rng.integers(6, 12)])),
        tail=0.0 if fore else float(rng.choice([0.0, 0.0, rng.uniform(0.25, 0.4)])),
    )


def species_styles(n_species: int, seed: int) -> list[SpeciesStyle]:
    """The shape families of a synthetic set; species `k` depends only on (seed, k)."""
    styles = []
    first_hue = np.random.default_rng([seed, 0]).uniform(0, 1)
    for k in range(n_species):
        rng = np.random.default_rng([seed, 1, k])
        hue = first_hue + k * 0.618034  # golden-ratio steps keep any number of species apart in hue
        base = _random_colour(rng, hue=hue)
        accent = _random_colour(rng, hue=hue + rng.uniform(0.25, 0.75))  # a contrasting hue
        hind_hue = hue + rng.uniform(-0.15, 0.15)
        hind_base = base if rng.random() < 0.6 else _random_colour(rng, hue=hind_hue)
        styles.append(SpeciesStyle(fore=_wing_style(rng, True, base, accent),
                                   hind=_wing_style(rng, False, hind_base, accent),
                                   body_colour=_dark(rng)))
    return styles


def _wing(u: np.ndarray, w: np.ndarray, style: WingStyle, spread_deg: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Mask of one wing lobe at points (u, w) of the butterfly frame, and the RGB paint of the
    points inside it, shape (n_inside, 3): painting only those keeps generation fast."""
    angle = float(np.deg2rad(style.angle_deg + spread_deg))
    du, dw = u - style.anchor[0], w - style.anchor[1]
    s = (du * np.cos(angle) + dw * np.sin(angle)) / style.length  # 0 at the body .. 1 at the tip
    t = (-du * np.sin(angle) + dw * np.cos(angle)) / (style.width / 2)
    along = (np.clip(s, 0, None) ** style.taper - 0.5) / 0.5  # taper moves the widest point
    psi = np.arctan2(t, along)
    q = np.hypot(along, t) / (1 + style.scallop_amp * np.cos(style.scallop_k * psi))
    inside = q < 1
    if style.tail > 0:  # a thin tail leaving the outer edge, slanted towards the body axis
        tail_angle = angle - float(np.deg2rad(20))
        tu, tw = du - 0.8 * style.length * np.cos(angle), dw - 0.8 * style.length * np.sin(angle)
        ts = (tu * np.cos(tail_angle) + tw * np.sin(tail_angle)) / style.tail
        tt = (-tu * np.sin(tail_angle) + tw * np.cos(tail_angle)) / 0.05
        inside |= (ts > 0) & (ts < 1) & (np.abs(tt) < 1 - ts * 0.5)
    s, t, q, psi = s[inside], t[inside], np.minimum(q[inside], 1), psi[inside]

    base, tip = np.array(style.base, np.float32), np.array(style.tip, np.float32)
    paint = base + np.clip(s, 0, 1)[:, None] * (tip - base)  # gradient from base to tip
    if style.band_at >= 0:
        paint[np.abs(s - style.band_at) < style.band_width] = style.band_colour
    for spot_s, spot_t, radius in style.spots:
        r = np.hypot((s - spot_s) * style.length, (t - spot_t) * style.width / 2)
        paint[r < radius] = style.spot_colour
        if style.eyespot:
            paint[r < radius * 0.55] = (0.95, 0.9, 0.6)
            paint[r < radius * 0.3] = (0.05, 0.05, 0.05)
    if style.veins:
        phi = np.arctan2(t * style.width / 2, np.clip(s, 1e-3, None) * style.length)
        phase = (phi / (np.pi / (style.veins + 1)) * 2) % 1
        paint[(np.abs(phase - 0.5) < 0.06) & (s > 0.1)] = (0.06, 0.05, 0.05)
    if style.margin > 0:
        rim = q > 1 - style.margin
        paint[rim] = (0.07, 0.06, 0.06)
        if style.margin_dots:
            dots = rim & (q < 1 - style.margin * 0.35) & (np.cos(style.margin_dots * psi) > 0.75)
            paint[dots] = (0.95, 0.95, 0.92)
    return inside, paint


def _background(rng: np.random.Generator, size: int, borrowed: list[tuple]) -> np.ndarray:
    """An out-of-focus, mottled, grainy scene of leaves, stems and pebbles (float RGB 0..1)."""
    scene_hue = rng.uniform(0, 1)
    palette = [colorsys.hsv_to_rgb((scene_hue + rng.normal(0, 0.08)) % 1, rng.uniform(0.2, 0.8),
                                   rng.uniform(0.2, 0.85)) for _ in range(4)]
    palette += borrowed  # wing colours appear in the clutter too: colour alone cannot separate
    coarse = np.array([palette[i] for i in rng.integers(0, 4, 16)]).reshape(4, 4, 3)
    scene = cv2.resize(coarse.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(15, 35))):
        colour = palette[int(rng.integers(len(palette)))]
        centre = tuple(int(c) for c in rng.integers(0, size, 2))
        axes = tuple(int(a) for a in rng.uniform(0.03, 0.18, 2) * size + 1)
        cv2.ellipse(scene, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    tuple(float(c) for c in colour), -1)
    for _ in range(int(rng.integers(3, 10))):
        start, end = rng.integers(-size // 4, size + size // 4, (2, 2))
        cv2.line(scene, tuple(int(c) for c in start), tuple(int(c) for c in end),
                 tuple(float(c) for c in palette[int(rng.integers(4))]), int(rng.integers(1, 3)))
    scene = cv2.GaussianBlur(scene, (0, 0), sigmaX=rng.uniform(0.8, 1.8))  # depth of field
    mottle = cv2.GaussianBlur(rng.standard_normal((size, size), np.float32), (0, 0), 1.5)
    scene += 0.12 * mottle[..., None]
    return scene + rng.uniform(0.025, 0.05) * rng.standard_normal(scene.shape, np.float32)


@dataclass(frozen=True)
class Pose:
    """Where a butterfly sits: centre (x, y) in pixels, radius in pixels, counter-clockwise turn."""

    cx: float
    cy: float
    radius: float
    rotation_deg: float


def draw_pose(rng: np.random.Generator, size: int, orientation: str, jitter_deg: float) -> Pose:
    """A random pose that keeps the butterfly inside the image; `upright` tilts by N(0, jitter)."""
    radius = rng.uniform(0.34, 0.44) * size
    slack = max(0.0, 0.48 * size - 0.95 * radius)
    cx, cy = (size - 1) / 2 + rng.uniform(-slack, slack, 2)
    if orientation == "uniform":
        rotation = rng.uniform(0, 360)
    elif orientation == "upright":
        rotation = rng.normal(0, jitter_deg)
    else:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return Pose(float(cx), float(cy), float(radius), float(rotation))


def render_butterfly(rng: np.random.Generator, species: SpeciesStyle, size: int, pose: Pose,
                     borrowed_colours: list[tuple] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 (size, size, 3) image and its exact bool (size, size) foreground mask."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = float(np.deg2rad(pose.rotation_deg))
    dx, dy = (xs - pose.cx) / pose.radius, (pose.cy - ys) / pose.radius  # y up: head up if upright
    u = np.abs(dx * np.cos(theta) + dy * np.sin(theta))  # |lateral|: bilateral symmetry
    w = -dx * np.sin(theta) + dy * np.cos(theta)  # along the body, towards the head

    spread = rng.normal(0, 4)  # how far the wings are opened, shared by fore and hind wings
    hind_mask, hind_paint = _wing(u, w, species.hind, -spread)
    fore_mask, fore_paint = _wing(u, w, species.fore, spread)
    body = (u / 0.055) ** 2 + ((w + 0.05) / 0.42) ** 2 < 1
    head = np.hypot(u, w - 0.42) < 0.07
    mask = hind_mask | fore_mask | body | head

    borrowed = borrowed_colours or [species.fore.base, species.fore.band_colour]
    image = _background(rng, size, borrowed)
    butterfly = np.zeros_like(image)
    butterfly[hind_mask] = hind_paint
    butterfly[fore_mask] = fore_paint  # fore wings overlap the hind wings
    butterfly[body | head] = species.body_colour
    butterfly *= rng.uniform(0.8, 1.15, 3).astype(np.float32)  # per-image colour cast
    butterfly += 0.012 * rng.standard_normal(butterfly.shape, np.float32)  # less than the clutter
    image[mask] = butterfly[mask]
    # uneven light over butterfly and background alike: brightness is no cue
    light = cv2.resize(rng.uniform(0.75, 1.2, (3, 3)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_CUBIC)
    image = image * light[..., None]
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), mask


def synthetic_ids(n_images: int, n_species: int) -> list[str]:
    """Leeds-style ids: species round-robin (balanced), `<species:3><index in species:4>`."""
    return [f"{i % n_species + 1:03d}{i // n_species + 1:04d}" for i in range(n_images)]


def generate_synthetic(n_images: int, image_size: int, n_species: int, orientation: str,
                       seed: int, jitter_deg: float = 15.0
                       ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield (id, RGB uint8 image, bool mask); image `i` depends only on (seed, i, settings)."""
    styles = species_styles(n_species, seed)
    for i, image_id in enumerate(synthetic_ids(n_images, n_species)):
        rng = np.random.default_rng([seed, 2, i])
        species = styles[i % n_species]
        other = styles[int(rng.integers(n_species))]
        borrowed = [species.fore.base, other.fore.base, other.hind.band_colour]
        pose = draw_pose(rng, image_size, orientation, jitter_deg)
        image, mask = render_butterfly(rng, species, image_size, pose, borrowed)
        yield image_id, image, mask
