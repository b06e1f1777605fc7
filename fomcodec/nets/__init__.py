"""Networks: FOMM's keypoint detector, dense motion and generator (state_dict-compatible with the
authors' checkpoints), their configs and shared blocks, the training discriminator, and the
facial frame interpolator with its warping. Pure torch modules: they import only each other
and the top-level helpers; the registry (:mod:`fomcodec.zoo`) builds and loads them.
"""
