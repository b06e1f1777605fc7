"""Motion models and networks: FOMM's keypoint detector, dense motion and generator
(state_dict-compatible with the authors' checkpoints), their configs and shared blocks, the
training discriminator, the weightless lattice warp (the default motion model), the two frame
interpolators with their warping and optical flow, and the base layer's fuser. Torch modules
(and OpenCV's DIS flow): they import only each other and the top-level helpers; the registry
(:mod:`fomcodec.zoo`) builds and loads them.
"""
