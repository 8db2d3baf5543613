"""The steerable basis of `cyclic.SteerableGroupConv2d`: circular harmonics times Gaussian rings.

As escnn's R2Conv, with the angle phi measured counter-clockwise from the x axis (x right, y up,
origin at the centre pixel of a k x k filter):

    psi(rho, phi) = exp(-(rho - radius)^2 / (2 sigma^2)) * {cos, sin}(m phi)

Turning psi by theta gives cos(m(phi - theta)), sin(m(phi - theta)): a rotation by m*theta of each
(cos, sin) coefficient pair (`coefficient_rotation`), so the turned filter is the same continuous
function, sampled exactly, at any angle (`sample_harmonics`). What the grid cannot make exact is
the convolution: samples at the pixel centres and at the turned pixel centres weigh a smooth
image slightly differently; that residue is the measured 45-degree error
(benchmarks/layer_equivariance.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Harmonic:
    """One real basis function: a Gaussian ring times cos or sin of `frequency` times the angle."""

    radius: float
    sigma: float
    frequency: int
    part: str  # "cos" or "sin"


def default_harmonics(kernel_size: int) -> tuple[Harmonic, ...]:
    """escnn's default basis for a k x k filter (R2Conv: rings, sigmas, `_manual_fco1`).

    Rings at radii 0, 1, ..., (k-1)/2 pixels; sigma 0.6, 0.4 on the outermost ring (less spill
    past the filter's edge), a point at the centre. Frequencies to 2 per ring, the centre only 0,
    inner rings of radius r to min(2r, 2r - (r+1) % 2): higher frequencies than a ring's pixels
    can carry would alias, and a turned copy would not be the same function on the grid.
    """
    outer = (kernel_size - 1) // 2
    harmonics = []
    for r in range(outer + 1):
        if r == 0:
            sigma, top = 0.005, 0
        elif r == outer:
            sigma, top = 0.4, min(2 * r, 2)
        else:
            sigma, top = 0.6, min(2 * r, 2 * r - (r + 1) % 2)
        for m in range(top + 1):
            harmonics.append(Harmonic(float(r), sigma, m, "cos"))
            if m:
                harmonics.append(Harmonic(float(r), sigma, m, "sin"))
    return tuple(harmonics)


def grid_coordinates(kernel_size: int) -> tuple[Tensor, Tensor]:
    """(x, y) of each pixel centre of a k x k filter, float64: x right, y up, 0 at the centre.

    Symmetric about the centre, so a quarter turn of the coordinates is a permutation of them.
    """
    c = (kernel_size - 1) / 2
    rows, cols = torch.meshgrid(torch.arange(kernel_size, dtype=torch.float64),
                                torch.arange(kernel_size, dtype=torch.float64), indexing="ij")
    return cols - c, c - rows


def harmonic_values(harmonics: tuple[Harmonic, ...], x: Tensor, y: Tensor) -> Tensor:
    """Each basis function at the points (x, y) (x right, y up), unnormalised: (J, *x.shape)."""
    rho, phi = torch.hypot(x, y), torch.atan2(y, x)
    values = []
    for h in harmonics:
        ring = torch.exp(-0.5 * ((rho - h.radius) / h.sigma) ** 2)
        wave = torch.cos(h.frequency * phi) if h.part == "cos" else torch.sin(h.frequency * phi)
        # the angle is undefined at the centre: a harmonic of m > 0 vanishes there
        values.append(torch.where(rho > 1e-9, ring * wave, 0.0) if h.frequency else ring)
    return torch.stack(values)


def harmonic_norms(harmonics: tuple[Harmonic, ...], kernel_size: int) -> Tensor:
    """(J,) the rotation-invariant norm of each (ring, frequency) pair on the k x k grid: the root
    mean of its cos and sin parts' squared norms (the parts alone differ, e.g. cos 2phi lives on
    the edge pixels of a 3x3 grid and sin 2phi on its corners)."""
    squared = harmonic_values(harmonics, *grid_coordinates(kernel_size)).pow(2).sum((-2, -1))
    norms = []
    for h in harmonics:
        pair = [i for i, o in enumerate(harmonics)
                if (o.radius, o.sigma, o.frequency) == (h.radius, h.sigma, h.frequency)]
        norms.append(squared[pair].mean().sqrt())
    return torch.stack(norms)


def sample_harmonics(harmonics: tuple[Harmonic, ...], kernel_size: int,
                     angle: float = 0.0) -> Tensor:
    """The basis turned by `angle` degrees, (J, k, k) float64: psi_j(R(-angle) p) at each pixel p,
    divided by `harmonic_norms` (the same at every angle, so that turning stays the coefficient
    rotation of `coefficient_rotation`)."""
    x, y = grid_coordinates(kernel_size)
    t = math.radians(angle)
    turned = harmonic_values(harmonics, x * math.cos(t) + y * math.sin(t),
                             -x * math.sin(t) + y * math.cos(t))
    return turned / harmonic_norms(harmonics, kernel_size)[:, None, None]


def coefficient_rotation(harmonics: tuple[Harmonic, ...], angle: float) -> Tensor:
    """M (J, J) float64 with sample(angle)_j = sum_i M[i, j] sample(0)_i, i.e. turning a filter
    sum_j w_j psi_j by `angle` replaces w by M w: a rotation by m*angle of each (cos, sin) pair.

    cos(m(phi - t)) = cos(mt) cos(m phi) + sin(mt) sin(m phi)
    sin(m(phi - t)) = cos(mt) sin(m phi) - sin(mt) cos(m phi)
    """
    t = math.radians(angle)
    m = torch.eye(len(harmonics), dtype=torch.float64)
    index = {(h.radius, h.sigma, h.frequency, h.part): i for i, h in enumerate(harmonics)}
    for j, h in enumerate(harmonics):
        if h.frequency == 0:
            continue
        c, s = math.cos(h.frequency * t), math.sin(h.frequency * t)
        partner = index[(h.radius, h.sigma, h.frequency, "sin" if h.part == "cos" else "cos")]
        m[j, j] = c
        m[partner, j] = s if h.part == "cos" else -s
    return m
