"""Whole figures and faces, followed from frame to frame as tracks.

Why this shape: OpenCV's HOG people detector finds figures 50-100 px tall at 640x360 only when
the picture is enlarged so they reach ~96 px (its 64x128 window); on the whole frame that costs
~180 ms. So it runs only on crops around motion blobs (5-9 ms each), and a blob that no figure
explains (a shadow, a bag, a curtain) is never a person, and neither is one stray detection: a
new track is looked at again on the next frame and counts from its second detection. A track
follows its blob from frame to frame, and is re-checked where it stands every `RECHECK_S` (a
track no motion touches, sooner), so a visitor who stands still stays counted and a figure
lost in a crowd is let go. Someone already standing still when the stage starts makes no
blob at all: an optional slow full-frame sweep (`SWEEP_EVERY_S`, only while nobody is tracked)
finds them. A figure or a face that never moves for `NEVER_MOVED_MAX_S` is taken for a poster,
a painting or a statue: it is dropped, and at its place only detections that come with motion
count from then on.

Faces (from faces.py) confirm the track they fall in, or start a face track (a visitor close
to the lens shows a face, not a whole figure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from installation.core.messages import Person

from .motion import Blob

Box = tuple[int, int, int, int]  # x, y, width, height in the analysed frame's pixels

# HOG (OpenCV's default people detector, 64x128 window)
HOG_PERSON_PX = 96  # a figure this tall fills the window: crops are scaled so blobs reach it
HOG_MAX_UPSCALE = 3.0  # 32 px figures would need 3x; smaller blobs are not people anyway
# The detector's image pyramid only shrinks: a crop is enlarged so the box is this much over
# the window's figure. A blob can be shorter than its figure (legs moving, a still torso), a
# track's box taller: measured on a real walker at 45-100 px, 1.0 finds 75 %, 1.2 finds 97 %.
ROI_SCALE_SLACK = 1.2
ROI_MARGIN_X = 0.8  # crop margins, in the blob's width and height: the window needs context
ROI_MARGIN_Y = 0.35
ROI_MARGIN_PX = 8
HOG_MIN_WEIGHT = 0.5  # SVM score; real figures score 1.7-3.7, clutter below 0.5
NMS_OVERLAP = 0.3
# A HOG box is larger than the figure: measured on a real walker pasted at 50-100 px, the figure
# is the middle half of the width and 69 % of the height, starting 14 % down.
HOG_FIGURE_TOP = 0.14
HOG_FIGURE_HEIGHT = 0.69
HOG_FIGURE_WIDTH = 0.5
MAX_ROI_PER_FRAME = 4  # HOG crops per frame at most (~8 ms each): the budget goes to the largest blobs
REJECT_COOLDOWN_S = 0.6  # a blob HOG found no one in is not looked at again this soon

# Tracks
MATCH_OVERLAP = 0.3  # intersection over the smaller box: the same figure
DUPLICATE_OVERLAP = 0.5  # two tracks this entangled are one
FOLLOW_SIZE_RATIO = 1.6  # a blob this much larger than the track is a group, not the figure moving
RECHECK_S = 1.5  # a track not confirmed this long is looked at again where it stands
LOST_RECHECK_S = 0.4  # ...and one no motion touches (lost in a crowd, or gone) this often
SIGHTING_S = 2.0  # a track confirmed or in motion this recently counts as a sighting (covers re-checks)
SEEN_HOLD_S = 3.0  # a track neither moving nor confirmed this long is gone
CONFIRM_HOLD_S = 20.0  # a track no detector has confirmed this long is gone, moving or not
MAX_FAILED_RECHECKS = 2  # re-checks in a row that find no figure: the track is a leftover (~3 s)
CONFIRM_HITS = 2  # a track counts once detected this often: one stray detection is never a person
TENTATIVE_S = 1.0  # ...and a new track not detected again within this is dropped
NEVER_MOVED_MAX_S = 60.0  # a figure or face that never moved in this long is a picture, not a visitor
MAX_PICTURES = 32  # places remembered as pictures (the oldest forgotten first)

# The slow full-frame sweep (someone already standing still at start)
SWEEP_FIRST_S = 2.0  # after the first frame
SWEEP_EVERY_S = 20.0  # ~180 ms each: under 1 % of a core (nobody is tracked: the stage is idle)
SWEEP_UPSCALE = 2.0  # figures 50 px tall need the frame doubled
SWEEP_CANDIDATE_S = 3.0  # a sweep hit must be confirmed by a crop check within this

# Where and how near
NEAR_BODY_FRACTION = 0.45  # a figure at least this share of the frame's height is near
NEAR_FACE_FRACTION = 0.08  # a face at least this share of the frame's width (~50 px at 640) is near


@dataclass
class Track:
    box: Box
    kind: str  # "body" or "face"
    born_t: float
    confirmed_t: float  # last detection (HOG or face)
    seen_t: float  # last detection or overlapping motion
    checked_t: float  # last HOG re-check
    moved: bool = True  # False for figures found by the sweep until a blob touches them
    failed: int = 0  # re-checks in a row that found no figure
    hits: int = 1  # detections so far (the track counts from CONFIRM_HITS on)

    @property
    def counted(self) -> bool:
        return self.hits >= CONFIRM_HITS


@dataclass(frozen=True)
class PeopleResult:
    persons: tuple[Person, ...]  # in the analysed frame's pixels
    raw_count: int  # tracks this frame (not yet stable)
    seen: bool  # someone was sighted this frame (for presence)


@dataclass
class _Candidate:
    box: Box
    t: float


def overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area: 1 when one box holds the other."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / max(1, min(a[2] * a[3], b[2] * b[3]))


def figure_box(hog_box: Box) -> Box:
    x, y, w, h = hog_box
    fw, fh = round(w * HOG_FIGURE_WIDTH), round(h * HOG_FIGURE_HEIGHT)
    return x + (w - fw) // 2, y + round(h * HOG_FIGURE_TOP), fw, fh


class FigureDetector:
    """OpenCV's HOG people detector on crops (and, rarely, on the whole frame enlarged)."""

    def __init__(self) -> None:
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))
        self.calls = 0  # crops looked at (for the benchmark and the tests)

    def in_region(self, frame: np.ndarray, box: Box) -> list[tuple[Box, float]]:
        """Figures around `box` (a blob or a track): the crop is scaled so a figure of the box's
        height is ~96 px. Returns figure boxes (not HOG boxes) with their scores."""
        self.calls += 1
        x, y, w, h = box
        up = min(HOG_MAX_UPSCALE, HOG_PERSON_PX * ROI_SCALE_SLACK / max(1, h))
        mx, my = int(w * ROI_MARGIN_X) + ROI_MARGIN_PX, int(h * ROI_MARGIN_Y) + ROI_MARGIN_PX
        height, width = frame.shape[:2]
        x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(width, x + w + mx), min(height, y + h + my)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return []
        crop = cv2.resize(frame[y0:y1, x0:x1], None, fx=up, fy=up, interpolation=cv2.INTER_LINEAR)
        # The window needs 64x128 (plus the padding); a crop at the frame's edge may be smaller.
        pad_x, pad_y = max(0, 80 - crop.shape[1]), max(0, 144 - crop.shape[0])
        if pad_x or pad_y:
            crop = cv2.copyMakeBorder(crop, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        found, weights = self._hog.detectMultiScale(crop, winStride=(8, 8), padding=(16, 16), scale=1.05)
        hits = [(figure_box((round(b[0] / up) + x0, round(b[1] / up) + y0, round(b[2] / up), round(b[3] / up))),
                 float(s)) for b, s in zip(found, np.ravel(weights), strict=True) if s > HOG_MIN_WEIGHT]
        return _nms(hits)

    def whole_frame(self, frame: np.ndarray) -> list[tuple[Box, float]]:
        """Figures anywhere, on the frame enlarged `SWEEP_UPSCALE` times (~180 ms at 640x360)."""
        big = cv2.resize(frame, None, fx=SWEEP_UPSCALE, fy=SWEEP_UPSCALE, interpolation=cv2.INTER_LINEAR)
        found, weights = self._hog.detectMultiScale(big, winStride=(8, 8), padding=(8, 8), scale=1.1)
        hits = [(figure_box((round(b[0] / SWEEP_UPSCALE), round(b[1] / SWEEP_UPSCALE), round(b[2] / SWEEP_UPSCALE),
                             round(b[3] / SWEEP_UPSCALE))), float(s))
                for b, s in zip(found, np.ravel(weights), strict=True) if s > HOG_MIN_WEIGHT]
        return _nms(hits)


def _nms(hits: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """One box per figure: on figure boxes, not the detector's (twice as wide, they would merge
    two people walking side by side)."""
    if len(hits) < 2:
        return hits
    keep = cv2.dnn.NMSBoxes([list(b) for b, _ in hits], [s for _, s in hits], HOG_MIN_WEIGHT, NMS_OVERLAP)
    return [hits[i] for i in np.ravel(keep)]


@dataclass
class PeopleTracker:
    """Tracks figures and faces over frames. `update` once per analysed frame, with the motion
    blobs and the faces (None when the face detector skipped this frame)."""

    sweep: bool = True
    detector: FigureDetector = field(default_factory=FigureDetector)
    tracks: list[Track] = field(default_factory=list)
    _start_t: float | None = None
    _next_sweep_t: float = 0.0
    _candidates: list[_Candidate] = field(default_factory=list)
    _clutter: list[Box] = field(default_factory=list)  # pictures: detections there count only with motion
    _rejected: list[tuple[Box, float]] = field(default_factory=list)  # blobs HOG found no one in

    def update(self, frame: np.ndarray, t: float, blobs: tuple[Blob, ...], faces: list[Box] | None) -> PeopleResult:
        if self._start_t is None:
            self._start_t = t
            self._next_sweep_t = t + SWEEP_FIRST_S
        self._follow(blobs, t)
        self._detect_in_blobs(frame, blobs, t)
        self._recheck(frame, t)
        if faces:
            self._add_faces(faces, blobs, t)
        if self.sweep:
            self._sweep(frame, t)
        self._expire(t)
        height, width = frame.shape[:2]
        counted = [track for track in self.tracks if track.counted]
        persons = tuple(describe(track, width, height) for track in counted)
        seen = any(t - track.seen_t <= SIGHTING_S for track in counted)
        return PeopleResult(persons, len(counted), seen)

    def _follow(self, blobs: tuple[Blob, ...], t: float) -> None:
        """A track moves with the one blob it overlaps; any overlapping motion is a sighting."""
        for track in self.tracks:
            touching = [b for b in blobs if overlap(track.box, b.box) > MATCH_OVERLAP]
            if not touching:
                continue
            track.seen_t = t
            track.moved = True
            if len(touching) == 1 and track.kind == "body":
                bx, by, bw, bh = touching[0].box
                x, y, w, h = track.box
                if bw < w * FOLLOW_SIZE_RATIO * 2 and h / FOLLOW_SIZE_RATIO < bh < h * FOLLOW_SIZE_RATIO:
                    # keep the figure's size (the blob is ragged), move it with the blob's feet
                    track.box = (bx + bw // 2 - w // 2, by + bh - h, w, h)

    def _detect_in_blobs(self, frame: np.ndarray, blobs: tuple[Blob, ...], t: float) -> None:
        self._rejected = [(b, rt) for b, rt in self._rejected if t - rt < REJECT_COOLDOWN_S]
        budget = MAX_ROI_PER_FRAME
        for blob in blobs:  # largest first
            if budget == 0:
                break
            if self._explained(blob.box) or any(overlap(blob.box, b) > MATCH_OVERLAP for b, _ in self._rejected):
                continue
            budget -= 1
            hits = self.detector.in_region(frame, blob.box)
            if not hits:
                self._rejected.append((blob.box, t))
            for box, _ in hits:
                self._confirm(box, "body", t, moved=True)

    def _explained(self, box: Box) -> bool:
        """A blob is explained by the tracks inside it when they are wide enough for it; a blob
        wider than them holds someone new (walking beside, or joining a group)."""
        inside = [tr.box[2] for tr in self.tracks if overlap(tr.box, box) > MATCH_OVERLAP]
        # A walker's blob is up to ~1.6x its figure (swinging arms and legs, the mask's dilation);
        # twice that before looking again: HOG rarely separates people walking in a tight group
        # (measured on the vtest street: looking at every wider blob cost 70 % more for no gain).
        return bool(inside) and box[2] <= sum(inside) * FOLLOW_SIZE_RATIO * 2

    def _recheck(self, frame: np.ndarray, t: float) -> None:
        """New body tracks are looked at again on the next frame (their second detection makes
        them count). Of the others one a frame (a still visitor needs no more): first one that
        no motion touched this frame (it lost its figure in a crowd, or the figure left), every
        `LOST_RECHECK_S`; else the one unconfirmed longest, once past `RECHECK_S`. Sweep
        candidates likewise, until confirmed."""
        bodies = [tr for tr in self.tracks if tr.kind == "body"]
        new = [tr for tr in bodies if not tr.counted and tr.checked_t < t][:MAX_ROI_PER_FRAME]
        lost = [tr for tr in bodies if tr.counted and tr.seen_t < t and t - tr.checked_t >= LOST_RECHECK_S]
        due = lost or [tr for tr in bodies if tr.counted and t - max(tr.confirmed_t, tr.checked_t) >= RECHECK_S]
        if due:
            new.append(min(due, key=lambda tr: max(tr.confirmed_t, tr.checked_t)))
        for track in new:
            track.checked_t = t
            self._recheck_track(frame, track, t)
        self._candidates = [c for c in self._candidates if t - c.t <= SWEEP_CANDIDATE_S]
        if self._candidates:
            candidate = self._candidates.pop(0)
            for box, _ in self.detector.in_region(frame, candidate.box):
                if overlap(box, candidate.box) > MATCH_OVERLAP:
                    self._confirm(box, "body", t, moved=False)
                    break

    def _recheck_track(self, frame: np.ndarray, track: Track, t: float) -> None:
        """Looks for the track's figure around its box. The figure may have walked on inside a
        group's blob (the track could not follow it there): the nearest figure in the crop that
        no other track holds is taken for it. A track that is looked for and not found
        `MAX_FAILED_RECHECKS` times in a row is gone: its box marks where someone was."""
        others = [tr.box for tr in self.tracks if tr is not track]
        hits = [box for box, _ in self.detector.in_region(frame, track.box)
                if not any(overlap(box, other) > MATCH_OVERLAP for other in others)]
        if not hits:
            track.failed += 1
            return
        cx, cy = track.box[0] + track.box[2] / 2, track.box[1] + track.box[3] / 2
        best = min(hits, key=lambda b: abs(b[0] + b[2] / 2 - cx) + abs(b[1] + b[3] / 2 - cy))
        track.box, track.confirmed_t, track.seen_t, track.failed = best, t, t, 0
        track.hits += 1

    def _add_faces(self, faces: list[Box], blobs: tuple[Blob, ...], t: float) -> None:
        for face in faces:
            cx, cy = face[0] + face[2] // 2, face[1] + face[3] // 2
            holder = next((tr for tr in self.tracks if tr.kind == "body" and _contains(tr.box, cx, cy)), None)
            if holder is not None:
                holder.confirmed_t = holder.seen_t = t
                holder.failed = 0
                holder.hits += 1
                continue
            moving = any(overlap(face, b.box) > MATCH_OVERLAP for b in blobs)
            if not moving and self._in_clutter(face):
                continue  # the face in a poster or a painting
            self._confirm(face, "face", t, moved=moving)

    def _confirm(self, box: Box, kind: str, t: float, moved: bool) -> None:
        same = [tr for tr in self.tracks if tr.kind == kind and overlap(tr.box, box) > MATCH_OVERLAP]
        if same:
            track = max(same, key=lambda tr: overlap(tr.box, box))
            track.box, track.confirmed_t, track.seen_t, track.failed = box, t, t, 0
            track.hits += 1
            track.moved = track.moved or moved
        else:
            self.tracks.append(Track(box, kind, born_t=t, confirmed_t=t, seen_t=t, checked_t=t, moved=moved))

    def _sweep(self, frame: np.ndarray, t: float) -> None:
        if t < self._next_sweep_t:
            return
        self._next_sweep_t = t + SWEEP_EVERY_S
        if self.tracks:
            return  # someone is tracked: the stage is awake, the crops do the work
        for box, _ in self.detector.whole_frame(frame):
            if not self._in_clutter(box):
                self._candidates.append(_Candidate(box, t))

    def _in_clutter(self, box: Box) -> bool:
        return any(overlap(box, c) > MATCH_OVERLAP for c in self._clutter)

    def _expire(self, t: float) -> None:
        kept: list[Track] = []
        for track in self.tracks:
            if (t - track.seen_t > SEEN_HOLD_S or t - track.confirmed_t > CONFIRM_HOLD_S
                    or track.failed >= MAX_FAILED_RECHECKS):
                continue
            if not track.counted and (track.failed or t - track.born_t > TENTATIVE_S):
                continue
            if not track.moved and t - track.born_t > NEVER_MOVED_MAX_S:
                self._clutter = [*self._clutter[-(MAX_PICTURES - 1):], track.box]
                continue
            kept.append(track)
        # One figure, one track: bodies before faces, then the most recently confirmed.
        kept.sort(key=lambda tr: (tr.kind != "body", -tr.confirmed_t))
        self.tracks = []
        for track in kept:
            twin = next((k for k in self.tracks if overlap(k.box, track.box) > DUPLICATE_OVERLAP), None)
            if twin is None:
                self.tracks.append(track)
            else:
                twin.confirmed_t = max(twin.confirmed_t, track.confirmed_t)
                twin.seen_t = max(twin.seen_t, track.seen_t)
                twin.moved = twin.moved or track.moved
                twin.hits = max(twin.hits, track.hits)


def _contains(box: Box, x: int, y: int) -> bool:
    return box[0] <= x < box[0] + box[2] and box[1] <= y < box[1] + box[3]


def describe(track: Track, width: int, height: int) -> Person:
    """Where (thirds of the width) and how near (by the figure's or the face's size)."""
    x, y, w, h = track.box
    centre = (x + w / 2) / width
    where = "left" if centre < 1 / 3 else "right" if centre > 2 / 3 else "centre"
    if track.kind == "face":
        near = w >= NEAR_FACE_FRACTION * width
    else:
        near = h >= NEAR_BODY_FRACTION * height
    return Person(box=track.box, where=where, distance="near" if near else "far", kind=track.kind)
