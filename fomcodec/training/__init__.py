"""Training of fomcodec's own weights (no pretrained networks exist on our machines): the FOMM
trainer and the interpolator's staged training, their losses, transforms, frame sampling,
checkpoints, the weightless DIS flow teacher, and ``fomc prepare`` (raw clips to a
face-cropped training set). May import ``media``, ``codec``, ``nets`` and ``zoo``.
"""
