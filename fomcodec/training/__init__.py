"""Training of fomcodec's own FOMM weights (no pretrained networks exist on our machines)."""
