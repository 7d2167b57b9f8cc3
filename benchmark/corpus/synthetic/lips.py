"""Rendering a grayscale mouth-region video from articulation trajectories.

Each frame is drawn on a supersampled canvas (anti-aliased polygons, ``cv2.LINE_AA``), warped by a
small smooth head motion, lit with a slowly drifting light, shrunk with area averaging to the
output size and given camera noise. The mouth shape (opening, width, rounding, visible teeth and
tongue) follows the articulation parameters of :mod:`.visemes`; the look (lip thickness, mouth
width, skin and lip shade, ...) is a per-speaker :class:`LipAppearance`. Synthetic, not a face model.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class LipAppearance:
    """Per-speaker look of the mouth region (lengths are fractions of the image side)."""

    mouth_half_width: float = 0.27
    upper_thickness: float = 0.07
    lower_thickness: float = 0.10
    max_open: float = 0.30
    centre_x: float = 0.50
    centre_y: float = 0.52
    skin: float = 160.0  # gray level
    lip: float = 110.0
    teeth: float = 215.0
    cavity: float = 30.0
    tongue: float = 105.0
    head_motion: float = 0.02  # translation amplitude (fraction of side)
    head_rotation_deg: float = 2.0
    light_drift: float = 0.08  # relative gain amplitude
    noise_std: float = 2.5  # camera noise, gray levels
    bow: float = 0.25  # depth of the cupid's bow


def _smooth_process(rng: np.random.Generator, t: np.ndarray, n_sines: int = 3, f_lo: float = 0.1, f_hi: float = 0.9) -> np.ndarray:
    """A smooth zero-mean random signal in about [-1, 1] (sum of random sines)."""
    freqs = rng.uniform(f_lo, f_hi, n_sines)
    phases = rng.uniform(0, 2 * np.pi, n_sines)
    amps = rng.uniform(0.5, 1.0, n_sines)
    x = (amps[None, :] * np.sin(2 * np.pi * freqs[None, :] * t[:, None] + phases[None, :])).sum(axis=1)
    return x / amps.sum()


def _poly(points_x: np.ndarray, points_y: np.ndarray, shift: int) -> np.ndarray:
    return np.round(np.stack([points_x, points_y], axis=1) * (1 << shift)).astype(np.int32)


class LipRenderer:
    """Draws mouth frames of ``size`` x ``size`` pixels for one speaker's appearance."""

    SHIFT = 4  # sub-pixel bits for cv2 polygon coordinates

    def __init__(self, size: int, appearance: LipAppearance, supersample: int | None = None) -> None:
        self.size = int(size)
        self.app = appearance
        self.ss = supersample or int(min(4, max(2, np.ceil(192 / self.size))))
        self.S = self.size * self.ss
        grid = ((np.arange(self.S, dtype=np.float32) + 0.5) / self.S)
        self._yy, self._xx = grid[:, None], grid[None, :]  # broadcastable column / row
        self._u = np.linspace(-1.0, 1.0, 41)
        self._base_skin = self._static_skin()

    def _mask(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        m = np.zeros((self.S, self.S), np.uint8)
        cv2.fillPoly(m, [_poly(xs, ys, self.SHIFT)], 255, lineType=cv2.LINE_AA, shift=self.SHIFT)
        return m.astype(np.float32) / 255.0

    def _static_skin(self) -> np.ndarray:
        """Skin shading that does not move with the mouth (light from above, nose, folds)."""
        a, S, yy, xx = self.app, self.S, self._yy, self._xx
        img = np.full((S, S), a.skin, np.float32)
        img *= 1.0 - 0.10 * (yy - 0.5)  # top a bit brighter (light from above)
        img *= 1.0 - 0.18 * np.exp(-((yy - 0.02) / 0.08) ** 2)  # nose base shadow
        for side in (-1.0, 1.0):  # nasolabial folds (soft dark arcs at the sides)
            fx = a.centre_x + side * (a.mouth_half_width + 0.09 + 0.6 * (0.45 - yy) ** 2)
            img *= 1.0 - 0.07 * np.exp(-((xx - fx) / 0.03) ** 2 - ((yy - 0.42) / 0.22) ** 2)
        return img

    def _skin(self, jaw: float) -> np.ndarray:
        """Skin with the chin / mentolabial fold, which moves down with the jaw."""
        a = self.app
        cy = a.centre_y + a.lower_thickness + 0.10 + jaw
        chin = np.exp(-((self._yy - cy) / 0.03) ** 2) * np.exp(-((self._xx - a.centre_x) / 0.25) ** 2)
        return self._base_skin * (1.0 - 0.12 * chin)

    def render_pose(self, open_: float, width: float, round_: float, teeth: float, tongue: float) -> np.ndarray:
        """One frame (float32, supersampled, before motion/noise) for articulation parameters."""
        a, S, u = self.app, self.S, self._u
        open_h = a.max_open * max(open_, 0.0)
        up, lo = 0.32 * open_h, 0.68 * open_h
        hw = a.mouth_half_width * (0.80 + 0.40 * width) * (1.0 - 0.22 * round_)
        iw = hw * (0.90 - 0.30 * round_)  # inner opening narrower when rounded
        cx, cy = a.centre_x, a.centre_y + 0.25 * lo
        ut = a.upper_thickness * (1.0 + 0.35 * round_)
        lt = a.lower_thickness * (1.0 + 0.30 * round_) * (1.0 - 0.25 * teeth * max(0.0, 1.0 - 4 * open_))
        q = 0.55 + 0.6 * round_
        g_in = np.clip(1.0 - np.abs(u) ** 2, 0, 1) ** q
        g_out = np.clip(1.0 - np.abs(u) ** 2, 0, 1) ** 0.8
        bow = 1.0 - a.bow * np.exp(-(u / 0.15) ** 2) + 0.12 * np.exp(-((np.abs(u) - 0.35) / 0.2) ** 2)
        xo, xi = cx + hw * u, cx + iw * u
        y_ou = cy - up * g_out - ut * np.sqrt(np.clip(1 - u ** 2, 0, 1)) * bow
        y_ol = cy + lo * g_out + lt * np.clip(1 - u ** 2, 0, 1) ** 0.55
        y_iu, y_il = cy - up * g_in, cy + lo * g_in
        jaw = 0.6 * lo
        img = self._skin(jaw)

        lips = self._mask(np.r_[xo, xo[::-1]] * S, np.r_[y_ou, y_ol[::-1]] * S)
        # lower-lip highlight and darker upper lip (a per-row shade)
        lip_img = a.lip * np.where(self._yy < cy, 0.92, 1.0 + 0.10 * np.exp(-((self._yy - (cy + lo + 0.55 * lt)) / (0.3 * lt + 1e-3)) ** 2))
        img = img * (1 - lips) + lip_img * lips
        # mouth line / corners shading
        line = np.exp(-((self._yy - cy) / 0.008) ** 2) * (np.abs(self._xx - cx) < hw)
        img *= 1.0 - 0.35 * line * (open_h < 0.02)
        for side in (-1.0, 1.0):
            img *= 1.0 - 0.25 * np.exp(-(((self._xx - (cx + side * hw)) / 0.02) ** 2 + ((self._yy - cy) / 0.02) ** 2))

        if open_h > 1e-3:
            cav = self._mask(np.r_[xi, xi[::-1]] * S, np.r_[y_iu, y_il[::-1]] * S)
            # cavity darker towards the back (inside the mouth)
            cav_img = a.cavity * (1.0 + 0.6 * np.clip(np.abs(self._yy - cy) / (open_h + 1e-3), 0, 1))
            img = img * (1 - cav) + cav_img * cav
            if tongue > 0.01:
                ty = y_il.max() - (0.15 + 0.55 * tongue) * (up + lo)
                tmask = np.zeros((S, S), np.uint8)
                cv2.ellipse(tmask, (int(cx * S * 16), int(ty * S * 16)), (int(iw * 0.65 * S * 16), int(max(0.6 * lo, 0.015) * S * 16)),
                            0, 0, 360, 255, -1, cv2.LINE_AA, 4)
                tm = tmask.astype(np.float32) / 255.0 * cav * min(1.0, tongue * 1.3)
                img = img * (1 - tm) + a.tongue * tm
            teeth_h = (0.035 + 0.05 * teeth) * (1.0 - 0.5 * round_)
            if teeth > 0.01:
                band = self._mask(np.r_[xi, xi[::-1]] * S, np.r_[y_iu - 0.01, (y_iu + teeth_h * g_in)[::-1]] * S)
                tm = band * cav * min(1.0, teeth * 1.2)
                img = img * (1 - tm) + a.teeth * tm
                if teeth > 0.5:  # lower teeth
                    band = self._mask(np.r_[xi, xi[::-1]] * S, np.r_[y_il - 0.6 * teeth_h * g_in, (y_il + 0.01)[::-1]] * S)
                    tm = band * cav * (teeth - 0.5)
                    img = img * (1 - tm) + (a.teeth - 15) * tm
        # labiodental: upper teeth resting on the lower lip when nearly closed with teeth shown
        tuck = teeth * max(0.0, 1.0 - 5.0 * open_)
        if tuck > 0.05:
            y0 = cy + lo * g_in
            band = self._mask(np.r_[xi * 0.85 + cx * 0.15, (xi * 0.85 + cx * 0.15)[::-1]] * S,
                              np.r_[y0 - 0.004, (y0 + 0.035 * g_in)[::-1]] * S)
            tm = band * lips * 0.9 * tuck
            img = img * (1 - tm) + a.teeth * tm
        return img

    def render(self, traj: dict[str, np.ndarray], times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Render all frames of a trajectory as uint8 ``N x size x size``."""
        a, S, n = self.app, self.S, len(times)
        dx = _smooth_process(rng, times) * a.head_motion * S
        dy = _smooth_process(rng, times) * a.head_motion * S * 0.7
        rot = _smooth_process(rng, times) * a.head_rotation_deg
        scale = 1.0 + 0.03 * _smooth_process(rng, times, f_lo=0.05, f_hi=0.4)
        gain = 1.0 + a.light_drift * _smooth_process(rng, times, f_lo=0.05, f_hi=0.5)
        tilt = 0.5 * a.light_drift * _smooth_process(rng, times, f_lo=0.05, f_hi=0.3)
        out = np.empty((n, self.size, self.size), np.uint8)
        for k in range(n):
            img = self.render_pose(*(float(traj[p][k]) for p in ("open", "width", "round", "teeth", "tongue")))
            M = cv2.getRotationMatrix2D((S / 2, S / 2), float(rot[k]), float(scale[k]))
            M[0, 2] += dx[k]
            M[1, 2] += dy[k]
            img = cv2.warpAffine(img, M, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            img = img * (gain[k] * (1.0 + tilt[k] * (self._xx - 0.5)))
            small = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
            small = small + rng.normal(0.0, a.noise_std, small.shape).astype(np.float32)
            out[k] = np.clip(np.round(small), 0, 255).astype(np.uint8)
        return out
