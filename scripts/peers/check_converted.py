"""Loads a state dict written by `slfer-dist convert --to-torch` into the PyTorch reference model with
strict=True and prints its eval-mode outputs on the parity input, so they can be set beside
`slfer-dist`'s. Run with Debian's PyTorch:
    /usr/bin/python3 scripts/peers/check_converted.py FILE.pth [VARIANT] [SIZE]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from slfer_torch_model import SLFER  # noqa: E402
from torch_fixtures import parity_input  # noqa: E402

path, variant = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else 'proposed'
size = int(sys.argv[3]) if len(sys.argv) > 3 else 64
model = SLFER(variant=variant)
model.load_state_dict(torch.load(path, weights_only=True), strict=True)
model.eval()
with torch.no_grad():
    e, s, c = model(parity_input(2, size))
print(f'loaded {path} strictly into SLFER({variant!r})')
print('expression', [round(v, 6) for v in e.flatten().tolist()])
if c is not None:
    print('components', [round(v, 6) for v in c.flatten().tolist()])
