"""The bottom layer: safe loading of untrusted files, safe output paths, atomic writes and journals, device
and environment helpers.

Everything above may import ``core``; ``core`` imports only the standard library, numpy and torch.
"""
