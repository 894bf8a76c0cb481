"""Peer: PyTorch training throughput of the SLFER multi-task model (slfer_torch_model.py).

usage: python3 torch_train_throughput.py SIZE BATCH STEPS [cpu|cuda] [fp32|fp32cl|bf16]
(fp32cl: fp32 in channels_last memory format, as bf16 uses; slfer-dist's copy adds it so the
peer's best CPU layout is measured too.)
CPU threads: THREADS env (default 2). Prints one line with img/s.
"""
import os, sys, time
import torch, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from slfer_torch_model import SLFER

S, B, N = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
dev = sys.argv[4] if len(sys.argv) > 4 else 'cpu'
mode = sys.argv[5] if len(sys.argv) > 5 else 'fp32'
torch.set_num_threads(int(os.environ.get('THREADS', '2')))
torch.manual_seed(0)
if dev == 'cuda':
    torch.backends.cudnn.benchmark = True
m = SLFER().to(dev)
opt = torch.optim.Adam(m.parameters(), 1e-4, betas=(0.5, 0.999))
x = torch.randn(B, 3, S, S, device=dev)
y = torch.randint(0, 7, (B,), device=dev)
seg_t = torch.randint(0, 8, (B, S, S), device=dev)
ct_t = (torch.rand(B, 8, device=dev) > .5).float()
if mode in ('bf16', 'fp32cl'):
    m = m.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last)

def step():
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=(mode == 'bf16')):
        e, sg, c = m(x)
        loss = (F.cross_entropy(e.float(), y) + 0.5 * F.cross_entropy(sg.float(), seg_t)
                + 0.5 * F.binary_cross_entropy_with_logits(c.float(), ct_t))
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()

def sync():
    if dev == 'cuda': torch.cuda.synchronize()

for _ in range(3): step()
sync(); t = time.perf_counter()
for _ in range(N): step()
sync(); dt = time.perf_counter() - t
print(f'torch {torch.__version__} {dev} {mode} threads={torch.get_num_threads()} SLFER {S}px batch {B}: '
      f'{B * N / dt:.2f} img/s ({dt / N * 1000:.1f} ms/step)')
