"""The visitor's outline lands where the visitor is in the picture: through the generator's
crop of the camera and the screen's crop of the generated frame."""

from __future__ import annotations

import numpy as np

from installation.core.messages import GeneratedFrame, GenerationParams, Prompt
from installation.display.presenter import Presenter
from installation.display.silhouette import outline_points
from installation.show import DisplayConfig


def _mask(box=(400, 90, 120, 200), size=(640, 360)) -> np.ndarray:
    x, y, w, h = box
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[y:y + h, x:x + w] = 255
    return mask


def test_the_outline_follows_both_crops():
    # A 640x360 camera painted at 512x512 (its centre 360x360, x 140-500), shown on 1280x720
    # (the square's middle 512x288 rows, y 112-400, scaled 2.5x).
    (points,) = outline_points(_mask(), generated=(512, 512), screen=(1280, 720))
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    # The box x 400-519 is cut at the square's edge (500): camera x 400 -> square (400-140) *
    # 512/360 = 370 -> screen 370 * 2.5 = 924; y 90 -> square 128 -> screen (128-112) * 2.5 = 40.
    assert abs(x0 - 924) <= 4 and abs(y0 - 40) <= 4, (x0, y0)
    # Its right and bottom are cut by the crops (square x 500, screen row 400 of the square).
    assert x1 >= 1270 and y1 >= 710, (x1, y1)


def test_specks_are_not_outlined():
    speck = np.zeros((360, 640), np.uint8)
    speck[10:12, 10:12] = 255
    assert outline_points(speck, (512, 512), (1280, 720)) == []


def test_the_presenter_draws_the_outline_over_the_picture_and_clears_it():
    cfg = DisplayConfig(mode="headless", width=640, height=360, crossfade_s=0, caption=False, silhouette="outline")
    with Presenter(cfg) as presenter:
        grey = np.full((360, 640, 3), 60, np.uint8)
        presenter.show_frame(GeneratedFrame(image=grey, prompt=Prompt("x"), params=GenerationParams(),
                                            generator="test", model=""))
        presenter.set_silhouette(_mask(box=(200, 100, 200, 150)), generated=(640, 360))
        presenter.render()
        shot = presenter.screenshot()
        assert shot[100, 300].min() > 200  # the top edge of the box: white
        assert shot[175, 300].max() < 80  # inside: the picture, untouched
        presenter.set_silhouette(None, generated=(640, 360))
        presenter.render()
        assert presenter.screenshot()[100, 300].max() < 80
