"""Training of fomcodec's own weights (no pretrained networks exist on our machines): one
loop (``loop.py``) shared by the FOMM trainer, the frame interpolators' training (either
architecture, optionally distilled from a teacher) and the base-layer fuser's; their losses,
transforms, frame sampling, checkpoints, the weightless DIS flow teacher, and ``fomc
prepare`` (raw clips to a face-cropped training set). May import ``media``, ``codec``,
``nets`` and ``zoo``.
"""
