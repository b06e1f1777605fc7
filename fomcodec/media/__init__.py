"""Media in and out: reading and writing video (:mod:`~fomcodec.media.video_io`), square crops
(:mod:`~fomcodec.media.crop`), shot cuts (:mod:`~fomcodec.media.shots`), face detection and
the face crop per clip or per shot (:mod:`~fomcodec.media.face_detection`,
:mod:`~fomcodec.media.face_crop`) and a public-domain sample clip. Knows nothing of keypoints
or bitstreams: imports only the top-level helpers (``errors``, ``fileio``).
"""
