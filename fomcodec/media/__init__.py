"""Media in and out: reading and writing video (:mod:`~fomcodec.media.video_io`), square crops
(:mod:`~fomcodec.media.crop`), face detection and the per-clip face crop
(:mod:`~fomcodec.media.face_detection`, :mod:`~fomcodec.media.face_crop`) and a public-domain
sample clip. Knows nothing of keypoints or bitstreams: imports only the top-level helpers
(``errors``, ``fileio``).
"""
