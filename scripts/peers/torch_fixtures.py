"""Writes the PyTorch fixtures of slfer-dist's checkpoint reader, `--pretrained`, `convert` and parity
tests: real torch.save files in both formats, and what PyTorch computes from them.

Run with Debian's PyTorch (the suite itself never needs it):
    /usr/bin/python3 scripts/peers/torch_fixtures.py [test/fixtures/torch]

Full-size state dicts stay small on disk: each tensor is a strided view (torch.as_strided) over a
small float16 storage of its own, and torch.save keeps views as (storage, offset, size, stride).
Strides differ on every axis, so a transposed or misnamed tensor cannot read as the right one.
The parity input, labels and masks are integer formulas that test/helpers/torch-parity.ts computes
identically.

Gradients are compared across a ReLU or a max-pool only where float32 rounding cannot move an
input across the kink: a pre-activation within rounding of zero, or two window values within
rounding of each other, route a gradient differently in any two float32 implementations (PyTorch's
own float32 and float64 disagree there too). So each BatchNorm that feeds a ReLU gets the bias that
puts the ReLU's threshold, per channel, in the widest gap between the middle values of its batch
(calibrate_thresholds), and the input's salt is searched until every other kink (residual sums, SE
and head ReLUs, max-pool windows) has a margin far above float32 rounding, measured in float64.
"""
import copy
import collections
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from slfer_torch_model import SLFER  # noqa: E402

OUT = 'test/fixtures/torch'
gen = torch.Generator().manual_seed(1234)
STRIDES = (1, 3, 5, 7)


def strided_like(shape, scale, offset=0, positive=False, dtype=torch.float16):
    """A tensor of `shape` viewing a storage of its own, just large enough, with distinct strides per axis."""
    shape = tuple(shape)
    if len(shape) == 0:
        return torch.rand((), generator=gen).to(dtype)
    strides = STRIDES[:len(shape)] if len(shape) > 1 else (1,)
    need = offset + sum((n - 1) * s for n, s in zip(shape, strides)) + 1
    base = torch.rand(need, generator=gen, dtype=torch.float64)
    base = (0.5 + base) if positive else (2 * base - 1)
    storage = (base * scale).to(dtype)
    return torch.as_strided(storage, shape, strides, offset)


def fan_in(t):
    return t[0].numel() if t.dim() > 1 else 1


def strided_state_dict(model_sd):
    """Replaces every float tensor of a state dict by a strided, He-scaled view; BN statistics stay sane."""
    out = collections.OrderedDict()
    for i, (k, v) in enumerate(model_sd.items()):
        if k.endswith('num_batches_tracked'):
            out[k] = torch.tensor(i, dtype=torch.int64)
        elif k.endswith('running_var'):
            out[k] = strided_like(v.shape, 1.0, positive=True)
        elif k.endswith('running_mean') or (k.endswith('bias')):
            out[k] = strided_like(v.shape, 0.1, offset=i % 3)
        elif v.dim() == 1:  # BN weight
            out[k] = strided_like(v.shape, 1.0, offset=1, positive=True)
        else:
            out[k] = strided_like(v.shape, (6.0 / fan_in(v)) ** 0.5, offset=i % 5)
    return out


def relu_fed_batchnorms(model):
    """The BatchNorms whose output goes straight into a ReLU: the stem, every block's bn1, the decoder."""
    names = ['stem.1'] + [f'layer{l}.{b}.bn1' for l in range(1, 5) for b in range(2)]
    names += ['fuse.1', 'decode.3', 'decode.7', 'decode.11']
    mods = dict(model.named_modules())
    return {n: mods[n] for n in names}


def calibrate_thresholds(model, x):
    """Sets the bias of each ReLU-fed BatchNorm (training mode, this batch) so that, per channel, the
    ReLU's threshold lies mid-way in the widest gap between neighbouring values of the middle fifth."""
    m = copy.deepcopy(model).double().train()
    biases = {}

    def pre(name):
        def hook(mod, args):
            x_ = args[0]
            mean = x_.mean((0, 2, 3), keepdim=True)
            var = x_.var((0, 2, 3), unbiased=False, keepdim=True)
            xhat = ((x_ - mean) / torch.sqrt(var + mod.eps)).transpose(0, 1).flatten(1).sort(1).values
            n = xhat.shape[1]
            lo, hi = int(n * 0.4), max(int(n * 0.6), int(n * 0.4) + 2)
            mid = xhat[:, lo:hi]
            gaps = mid[:, 1:] - mid[:, :-1]
            j = gaps.argmax(1, keepdim=True)
            t = (mid.gather(1, j) + mid.gather(1, j + 1)).squeeze(1) / 2
            with torch.no_grad():
                mod.bias.copy_(-mod.weight * t)
            biases[name] = mod.bias.detach().float().clone()
        return hook
    hooks = [mod.register_forward_pre_hook(pre(n)) for n, mod in relu_fed_batchnorms(m).items()]
    with torch.no_grad():
        m(x.double())
    for h in hooks:
        h.remove()
    return biases


def kink_margins(model, x):
    """In float64 and training mode: the smallest |ReLU input| over its layer's std, and the smallest gap
    between a max-pool window's two largest values over the largest (windows whose max is positive)."""
    m = copy.deepcopy(model).double().train()
    relu_in, pool_in = [], []
    hooks = [mod.register_forward_pre_hook(lambda _, a: relu_in.append(a[0].detach().clone()))
             for mod in m.modules() if isinstance(mod, torch.nn.ReLU)]
    hooks += [mod.fc1.register_forward_hook(lambda _, a, o: relu_in.append(o.detach().clone()))
              for mod in m.modules() if type(mod).__name__ == 'SE']
    hooks.append(m.stem[3].register_forward_pre_hook(lambda _, a: pool_in.append(a[0].detach().clone())))
    with torch.no_grad():
        m(x.double())
    for h in hooks:
        h.remove()
    relu = min((t.abs().min() / t.std()).item() for t in relu_in)
    p = pool_in[0]
    win = F.pad(p, (1, 1, 1, 1), value=float('-inf')).unfold(2, 3, 2).unfold(3, 3, 2).flatten(-2)
    top = win.topk(2, dim=-1).values
    on = top[..., 0] > 0
    gap = ((top[..., 0] - top[..., 1])[on] / top[..., 0][on]).min().item()
    return relu, gap


def save_both(obj, stem, legacy=True, zip_=True):
    if zip_:
        torch.save(obj, f'{OUT}/{stem}.zip.pth')
    if legacy:
        torch.save(obj, f'{OUT}/{stem}.legacy.pth', _use_new_zipfile_serialization=False)


# --- formulas shared with test/helpers/torch-parity.ts -------------------------------------------
def hash32(i):
    return (i * 2654435761) % (1 << 32)


def parity_input(b, s, salt=0):
    n = b * 3 * s * s
    v = [((hash32(i + salt) >> 8) % 2001 - 1000) / 1000.0 for i in range(n)]
    return torch.tensor(v, dtype=torch.float64).to(torch.float32).reshape(b, 3, s, s)


def parity_targets(b, s, parts=8, expressions=7):
    labels = torch.tensor([hash32(i + 7) % expressions for i in range(b)])
    masks = torch.tensor([(hash32(i + 11) >> 4) % parts for i in range(b * s * s)]).reshape(b, s, s)
    comps = torch.tensor([float((hash32(i + 13) >> 3) % 2) for i in range(b * parts)]).reshape(b, parts)
    return labels, masks, comps


def sample_indices(n, k=24):
    return sorted({hash32(j + 101) % n for j in range(k)})


def summary(t):
    """A tensor (torch layout, flattened) as its norm, its dot with a +-1 pattern and 24 sampled entries."""
    g = t.detach().flatten().double()
    sign = torch.tensor([1.0 if (hash32(i + 3) >> 5) % 2 else -1.0 for i in range(g.numel())], dtype=torch.float64)
    return {'shape': list(t.shape), 'norm': g.norm().item(), 'dot': (g * sign).sum().item(),
            'samples': {str(i): float('%.9g' % g[i].item()) for i in sample_indices(g.numel())}}


# --- 1. the reader: dtypes, views, nesting -------------------------------------------------------
def reader_fixture():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = collections.OrderedDict([
        ('f32', torch.tensor([[1.5, -2.25, 3.0], [0.0, 1e-3, -7.0]])),
        ('f16', torch.tensor([0.5, -1.25, 65504.0, 6e-8], dtype=torch.float16)),
        ('bf16', torch.tensor([1.0, -3.5, 0.0078125], dtype=torch.bfloat16)),
        ('f64', torch.tensor([1 / 3, -2.5e10], dtype=torch.float64)),
        ('i64', torch.tensor([-(2 ** 40), 0, 5], dtype=torch.int64)),
        ('i32', torch.tensor([-7, 2 ** 30], dtype=torch.int32)),
        ('u8', torch.tensor([0, 200, 255], dtype=torch.uint8)),
        ('bool', torch.tensor([True, False, True])),
        ('scalar', torch.tensor(4.0)),
        ('empty', torch.zeros(0, 3)),
        ('transposed', base.t()),              # stride (1, 6)
        ('sliced', base[1:3, 2:5]),            # offset 8, stride (6, 1)
        ('expanded', torch.tensor([1.0, 2.0]).reshape(2, 1).expand(2, 3)),  # stride (1, 0)
        ('shared_a', base[0]),                 # two views of one storage
        ('shared_b', base[3]),
    ])
    wrapped = {'state_dict': tensors, 'epoch': 3, 'best_acc': np.float64(0.875), 'arch': 'resnet18',
               'history': [1, 2.5, (3, 'x')], 'big': 2 ** 70, 'neg': -(2 ** 70)}
    save_both(wrapped, 'tensors')
    expected = {k: {'dtype': str(v.dtype).replace('torch.', ''), 'shape': list(v.shape),
                    'values': [str(x) if v.dtype == torch.int64 else float(x) for x in v.flatten().tolist()]}
                for k, v in tensors.items()}
    with open(f'{OUT}/tensors.expected.json', 'w') as f:
        json.dump(expected, f, indent=1)

    class Evil:
        def __reduce__(self):
            return (os.system, ('echo this-ran > /dev/null',))
    torch.save({'state_dict': {'w': torch.ones(2)}, 'payload': Evil()}, f'{OUT}/unsafe.pth')
    torch.save(torch.nn.Linear(2, 2), f'{OUT}/whole-module.pth')


# --- 2. MS-Celeb-1M-style backbones --------------------------------------------------------------
def pretrained_fixtures():
    tv = strided_state_dict(torchvision.models.resnet18().state_dict())
    torch.save({'state_dict': tv}, f'{OUT}/resnet18-msceleb.zip.pth')
    # DREAM's ijba_res18_naive.pth.tar: DataParallel's prefix, a 512->256 `feature` layer, 87,020 identities.
    dream = collections.OrderedDict((f'module.{k}', v) for k, v in tv.items() if not k.startswith('fc.'))
    dream['module.feature.weight'] = strided_like((256, 512), 0.05)
    dream['module.feature.bias'] = strided_like((256,), 0.05)
    dream['module.fc.weight'] = torch.rand(256, generator=gen).to(torch.float16).reshape(1, 256).expand(87020, 256)
    dream['module.fc.bias'] = torch.zeros(1, dtype=torch.float16).expand(87020)
    torch.save({'epoch': 30, 'arch': 'resnet18', 'state_dict': dream, 'best_prec1': 0.0,
                'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1, 'momentum': 0.9, 'params': [0, 1]}]}},
               f'{OUT}/ijba-res18-naive.legacy.pth.tar', _use_new_zipfile_serialization=False)
    # The same backbone in full precision, as torchvision itself saves it, for the value checks.
    with open(f'{OUT}/resnet18-msceleb.keys.json', 'w') as f:
        json.dump({k: list(v.shape) for k, v in tv.items()}, f)


# --- 3. SLFER parity: eval outputs and one training step -----------------------------------------
MARGIN = 2e-5  # float32 rounding of these activations is ~1e-6 of their size


def parity_fixture(batch=2, size=64, lambda_seg=0.5, lambda_cls=0.5):
    model = SLFER()
    base = strided_state_dict(model.state_dict())
    for salt in range(0, 4000000, 7919):
        x = parity_input(batch, size, salt)
        model.load_state_dict(base, strict=True)
        sd = collections.OrderedDict(base)
        for name, b in calibrate_thresholds(model, x).items():
            sd[f'{name}.bias'] = b
        model.load_state_dict(sd, strict=True)
        relu, gap = kink_margins(model, x)
        if relu > MARGIN and gap > MARGIN:
            break
        print(f'  salt {salt}: ReLU margin {relu:.1e}, max-pool gap {gap:.1e}')
    else:
        raise SystemExit('no input salt keeps every kink clear of float32 rounding')
    save_both(sd, 'slfer-proposed')
    print(f'parity input salt {salt}: smallest ReLU margin {relu:.2e}, max-pool gap {gap:.2e} (of the layer std)')
    labels, masks, comps = parity_targets(batch, size)
    out = {'batch': batch, 'size': size, 'salt': salt, 'lambdaSeg': lambda_seg, 'lambdaCls': lambda_cls,
           'margins': {'relu': relu, 'maxPool': gap}}

    model.eval()
    with torch.no_grad():
        e, s, c = model(x)
    seg_nhwc = s.permute(0, 2, 3, 1).contiguous().flatten()
    out['eval'] = {
        'expression': e.flatten().tolist(),
        'components': c.flatten().tolist(),
        'segmentationSamples': {str(i): float('%.9g' % seg_nhwc[i].item()) for i in sample_indices(seg_nhwc.numel(), 256)},
        'segmentationNorm': seg_nhwc.norm().item(),
        'segmentationMaxAbs': seg_nhwc.abs().max().item(),
    }

    model.train()
    e, s, c = model(x)
    l_ec = F.cross_entropy(e, labels)
    l_s = F.cross_entropy(s, masks)
    l_c = F.binary_cross_entropy_with_logits(c, comps, reduction='none').sum(1).mean()
    total = l_ec + lambda_seg * l_s + lambda_cls * l_c
    total.backward()
    out['loss'] = {'total': total.item(), 'expression': l_ec.item(), 'segmentation': l_s.item(), 'components': l_c.item()}
    out['gradients'] = {k: summary(p.grad) for k, p in model.named_parameters()}
    out['runningStats'] = {k: summary(v) for k, v in model.state_dict().items()
                           if k.endswith('running_mean') or k.endswith('running_var')}
    with open(f'{OUT}/slfer-parity.json', 'w') as f:
        json.dump(out, f)


def reference_keys():
    """Every variant's state-dict keys and shapes: what `convert --to-torch` must write for strict loading."""
    keys = {v: {k: list(t.shape) for k, t in SLFER(variant=v).state_dict().items()} for v in SLFER.VARIANTS}
    with open(f'{OUT}/slfer-keys.json', 'w') as f:
        json.dump(keys, f)


if __name__ == '__main__':
    OUT = sys.argv[1] if len(sys.argv) > 1 else OUT
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    reader_fixture()
    pretrained_fixtures()
    parity_fixture()
    reference_keys()
    for n in sorted(os.listdir(OUT)):
        print(f'{os.path.getsize(os.path.join(OUT, n)):>9}  {OUT}/{n}')
