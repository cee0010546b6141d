"""Measurement: metrics (:mod:`.metrics`), versioned records (:mod:`.records`), evaluation on
RepLab (:mod:`.evaluate`), the edge benchmark (:mod:`.bench`) and its SSH variant (:mod:`.remote`,
the ``[ssh]`` extra).

May import the device side and :mod:`edgerep.data`; the workstation only inside the functions
that measure a PyTorch checkpoint, so a bundle is evaluated and benchmarked without torch.
"""
