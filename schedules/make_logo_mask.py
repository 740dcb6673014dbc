"""Make schedules/logo-mask.png from schedules/logo.png: white where the purple background
is (it may dream), black on the yellow emblem and the white lettering (they stay legible).

    python schedules/make_logo_mask.py

The lettering and emblem are the pixels that are yellow (hue 15-40 of OpenCV's 0-180) or
nearly white (saturation < 60, value > 200); the mask is dilated by 3 pixels so that the
dream keeps a margin off the edges, then blurred by 2 pixels to a soft edge.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def logo_mask(bgr: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    keep = ((hue >= 15) & (hue <= 40) & (sat > 80)) | ((sat < 60) & (val > 200))
    keep = cv2.dilate(keep.astype(np.uint8), np.ones((7, 7), np.uint8))
    mask = np.where(keep > 0, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(mask, (0, 0), 2)


if __name__ == "__main__":
    out = HERE / "logo-mask.png"
    cv2.imwrite(str(out), logo_mask(cv2.imread(str(HERE / "logo.png"))))
    print(f"wrote {out}")
