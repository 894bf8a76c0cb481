"""BiSeNet face parsing in PyTorch, as face-parsing.PyTorch defines it: the reference that
slfer-dist's TF.js BiSeNet (src/parse/bisenet.ts) is checked against. Not part of the product.

The architecture is copied from zllrunning/face-parsing.PyTorch (MIT, Copyright (c) 2019 zll),
model.py and resnet.py, with the training-only parts left out: init_weight (which downloads the
ImageNet ResNet18 in resnet.py's constructor) and get_params. Every module name, shape and forward
step is the original's, so the state dict has the same 191 keys as 79999_iter.pth.

It writes (run with Debian's python3-torch: /usr/bin/python3 scripts/peers/bisenet_reference.py):
  test/fixtures/torch/bisenet-strided.pth          torch.save(sd, f): the zip format
  test/fixtures/torch/bisenet-strided-legacy.pth   _use_new_zipfile_serialization=False
  test/fixtures/torch/bisenet-reference.json       the outputs on the formula input
The weights are full-size (13.3M parameters) but each tensor is a torch.as_strided view over a
small storage of its own, so a file is a few hundred KB; torch.save writes the views with their
offsets and strides, which the TypeScript reader must honour. Conv weights are He-scaled hash
values; BatchNorm's running statistics are calibrated on the input (each set, in forward order, to
the mean and variance of what reaches it) so activations stay O(1) and the argmax is diverse.

The zip file and the JSON are the same bytes on every run; the legacy file is not (torch's legacy
writer keys storages by their memory address), though it holds the same tensors.

The input is defined by a formula (pixelByte below) that test/parse/bisenet-parity.test.ts
computes identically: no image file, no float that the two languages could round differently.
"""
import base64
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- face-parsing.PyTorch resnet.py (init_weight removed) -------------------------------------


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, in_chan, out_chan, stride=1):
        super(BasicBlock, self).__init__()
        self.conv1 = conv3x3(in_chan, out_chan, stride)
        self.bn1 = nn.BatchNorm2d(out_chan)
        self.conv2 = conv3x3(out_chan, out_chan)
        self.bn2 = nn.BatchNorm2d(out_chan)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if in_chan != out_chan or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_chan, out_chan, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_chan),
            )

    def forward(self, x):
        residual = self.conv1(x)
        residual = F.relu(self.bn1(residual))
        residual = self.conv2(residual)
        residual = self.bn2(residual)
        shortcut = x
        if self.downsample is not None:
            shortcut = self.downsample(x)
        out = shortcut + residual
        out = self.relu(out)
        return out


def create_layer_basic(in_chan, out_chan, bnum, stride=1):
    layers = [BasicBlock(in_chan, out_chan, stride=stride)]
    for i in range(bnum - 1):
        layers.append(BasicBlock(out_chan, out_chan, stride=1))
    return nn.Sequential(*layers)


class Resnet18(nn.Module):
    def __init__(self):
        super(Resnet18, self).__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = create_layer_basic(64, 64, bnum=2, stride=1)
        self.layer2 = create_layer_basic(64, 128, bnum=2, stride=2)
        self.layer3 = create_layer_basic(128, 256, bnum=2, stride=2)
        self.layer4 = create_layer_basic(256, 512, bnum=2, stride=2)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(self.bn1(x))
        x = self.maxpool(x)
        x = self.layer1(x)
        feat8 = self.layer2(x)
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


# ---- face-parsing.PyTorch model.py (init_weight, get_params and SpatialPath removed) -----------


class ConvBNReLU(nn.Module):
    def __init__(self, in_chan, out_chan, ks=3, stride=1, padding=1, *args, **kwargs):
        super(ConvBNReLU, self).__init__()
        self.conv = nn.Conv2d(in_chan, out_chan, kernel_size=ks, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chan)

    def forward(self, x):
        x = self.conv(x)
        x = F.relu(self.bn(x))
        return x


class BiSeNetOutput(nn.Module):
    def __init__(self, in_chan, mid_chan, n_classes, *args, **kwargs):
        super(BiSeNetOutput, self).__init__()
        self.conv = ConvBNReLU(in_chan, mid_chan, ks=3, stride=1, padding=1)
        self.conv_out = nn.Conv2d(mid_chan, n_classes, kernel_size=1, bias=False)

    def forward(self, x):
        x = self.conv(x)
        x = self.conv_out(x)
        return x


class AttentionRefinementModule(nn.Module):
    def __init__(self, in_chan, out_chan, *args, **kwargs):
        super(AttentionRefinementModule, self).__init__()
        self.conv = ConvBNReLU(in_chan, out_chan, ks=3, stride=1, padding=1)
        self.conv_atten = nn.Conv2d(out_chan, out_chan, kernel_size=1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_chan)
        self.sigmoid_atten = nn.Sigmoid()

    def forward(self, x):
        feat = self.conv(x)
        atten = F.avg_pool2d(feat, feat.size()[2:])
        atten = self.conv_atten(atten)
        atten = self.bn_atten(atten)
        atten = self.sigmoid_atten(atten)
        out = torch.mul(feat, atten)
        return out


class ContextPath(nn.Module):
    def __init__(self, *args, **kwargs):
        super(ContextPath, self).__init__()
        self.resnet = Resnet18()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, ks=3, stride=1, padding=1)
        self.conv_head16 = ConvBNReLU(128, 128, ks=3, stride=1, padding=1)
        self.conv_avg = ConvBNReLU(512, 128, ks=1, stride=1, padding=0)

    def forward(self, x):
        H0, W0 = x.size()[2:]
        feat8, feat16, feat32 = self.resnet(x)
        H8, W8 = feat8.size()[2:]
        H16, W16 = feat16.size()[2:]
        H32, W32 = feat32.size()[2:]

        avg = F.avg_pool2d(feat32, feat32.size()[2:])
        avg = self.conv_avg(avg)
        avg_up = F.interpolate(avg, (H32, W32), mode='nearest')

        feat32_arm = self.arm32(feat32)
        feat32_sum = feat32_arm + avg_up
        feat32_up = F.interpolate(feat32_sum, (H16, W16), mode='nearest')
        feat32_up = self.conv_head32(feat32_up)

        feat16_arm = self.arm16(feat16)
        feat16_sum = feat16_arm + feat32_up
        feat16_up = F.interpolate(feat16_sum, (H8, W8), mode='nearest')
        feat16_up = self.conv_head16(feat16_up)

        return feat8, feat16_up, feat32_up  # x8, x8, x16


class FeatureFusionModule(nn.Module):
    def __init__(self, in_chan, out_chan, *args, **kwargs):
        super(FeatureFusionModule, self).__init__()
        self.convblk = ConvBNReLU(in_chan, out_chan, ks=1, stride=1, padding=0)
        self.conv1 = nn.Conv2d(out_chan, out_chan // 4, kernel_size=1, stride=1, padding=0, bias=False)
        self.conv2 = nn.Conv2d(out_chan // 4, out_chan, kernel_size=1, stride=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.sigmoid = nn.Sigmoid()

    def forward(self, fsp, fcp):
        fcat = torch.cat([fsp, fcp], dim=1)
        feat = self.convblk(fcat)
        atten = F.avg_pool2d(feat, feat.size()[2:])
        atten = self.conv1(atten)
        atten = self.relu(atten)
        atten = self.conv2(atten)
        atten = self.sigmoid(atten)
        feat_atten = torch.mul(feat, atten)
        feat_out = feat_atten + feat
        return feat_out


class BiSeNet(nn.Module):
    def __init__(self, n_classes, *args, **kwargs):
        super(BiSeNet, self).__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, n_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, n_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, n_classes)

    def forward(self, x):
        H, W = x.size()[2:]
        feat_res8, feat_cp8, feat_cp16 = self.cp(x)
        feat_sp = feat_res8
        feat_fuse = self.ffm(feat_sp, feat_cp8)

        feat_out = self.conv_out(feat_fuse)
        feat_out16 = self.conv_out16(feat_cp8)
        feat_out32 = self.conv_out32(feat_cp16)

        feat_out = F.interpolate(feat_out, (H, W), mode='bilinear', align_corners=True)
        feat_out16 = F.interpolate(feat_out16, (H, W), mode='bilinear', align_corners=True)
        feat_out32 = F.interpolate(feat_out32, (H, W), mode='bilinear', align_corners=True)
        return feat_out, feat_out16, feat_out32


# ---- formulas shared with the TypeScript test -------------------------------------------------

M32 = 0xFFFFFFFF
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Not square, so a swapped H/W shows; small, so the test is quick on pure wasm.
HEIGHT, WIDTH = 64, 96
# Picked among 0..39 for the largest smallest top-2 gap of the main head's logits (2.1e-4): a
# float32 forward is ~1e-4 from float64 here, and the argmax should not hinge on rounding.
SALT = 21
SAMPLED_PIXELS = 256


def mix32(v):
    """A 32-bit integer hash (lowbias32); the test computes it with Math.imul."""
    v &= M32
    v ^= v >> 16
    v = (v * 0x7FEB352D) & M32
    v ^= v >> 15
    v = (v * 0x846CA68B) & M32
    v ^= v >> 16
    return v


def pixel_byte(c, y, x):
    """Pixel value 0..255 of channel c at (y, x): blobs of 8x8 plus noise, so features vary."""
    k = c + 3 * SALT
    coarse = mix32(0x1000 + k * 4096 + (y // 8) * 64 + (x // 8)) & 0xFF
    fine = mix32(0x9000000 + k * 1_000_000 + y * 1000 + x) & 0x3F
    return (coarse * 3 // 4 + fine) & 0xFF


def formula_input():
    """NCHW float32: (byte/255 - mean)/std, computed in float64 and rounded once, as the test does."""
    x = torch.empty(1, 3, HEIGHT, WIDTH, dtype=torch.float64)
    for c in range(3):
        rows = [[pixel_byte(c, y, xx) for xx in range(WIDTH)] for y in range(HEIGHT)]
        x[0, c] = (torch.tensor(rows, dtype=torch.float64) / 255.0 - MEAN[c]) / STD[c]
    return x.float()


def sampled_pixels():
    """The pixels whose 19 logits (of each head) the fixture keeps."""
    return [mix32(0x5EED0000 + k) % (HEIGHT * WIDTH) for k in range(SAMPLED_PIXELS)]


# ---- weights: full-size views over small storages ---------------------------------------------


def hashed_uniform(n, key):
    """n values in [-1, 1) from the hash, as float32."""
    return torch.tensor([(mix32(key * 7919 + i) / 2**32) * 2 - 1 for i in range(n)], dtype=torch.float32)


def strided_view(values_for_storage, shape, strides, offset):
    storage_len = offset + 1 + sum((s - 1) * st for s, st in zip(shape, strides))
    base = values_for_storage(storage_len)
    return torch.as_strided(base, shape, strides, offset)


def make_state_dict(model):
    """Conv weights: He-scaled hash values seen through strides (1, 3, 5, 7); BN affine: hash values;
    BN running statistics: calibrated on the input. Every float tensor is a view over its own storage."""
    sd = {}
    for idx, (name, ref) in enumerate(model.state_dict().items()):
        shape = tuple(ref.shape)
        offset = idx % 7
        if name.endswith('num_batches_tracked'):
            sd[name] = torch.tensor(79999, dtype=torch.int64)
        elif ref.dim() == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            scale = (3.0 ** 0.5) * (2.0 / fan_in) ** 0.5
            sd[name] = strided_view(lambda n: hashed_uniform(n, idx) * scale, shape, (1, 3, 5, 7), offset)
        elif name.endswith('.weight'):  # BN gamma
            sd[name] = strided_view(lambda n: 1.0 + 0.25 * hashed_uniform(n, idx), shape, (2,), offset)
        elif name.endswith('.bias'):  # BN beta
            sd[name] = strided_view(lambda n: 0.2 * hashed_uniform(n, idx), shape, (2,), offset)
        elif name.endswith('running_mean'):
            sd[name] = strided_view(lambda n: torch.zeros(n), shape, (1,), offset)
        elif name.endswith('running_var'):
            sd[name] = strided_view(lambda n: torch.ones(n), shape, (1,), offset)
        else:
            raise SystemExit(f'unexpected key {name}')
    return sd


def calibrate_batch_norm(model, sd, x):
    """Sets each BN's running statistics, in forward order, to those of what reaches it (eval mode,
    so everything upstream already uses its calibrated values). A BN on a pooled 1x1 vector has one
    value per channel: its variance is set from the hash instead (positive), its mean to that value."""
    names = {m: n for n, m in model.named_modules()}
    hooks = []

    def pre_hook(module, inputs):
        t = inputs[0].detach().double()
        key = names[module]
        mean = t.mean(dim=(0, 2, 3))
        if t.shape[0] * t.shape[2] * t.shape[3] > 1:
            var = t.var(dim=(0, 2, 3), unbiased=False) + 1e-3
        else:
            var = 0.5 + 0.5 * hashed_uniform(t.shape[1], 977).double().abs()
            mean = mean * 0.5
        module.running_mean.copy_(mean.float())
        module.running_var.copy_(var.float())
        sd[key + '.running_mean'].copy_(mean.float())  # writes through the view into its storage
        sd[key + '.running_var'].copy_(var.float())

    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_pre_hook(pre_hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()


def b64(t, dtype):
    return base64.b64encode(t.contiguous().numpy().astype(dtype).tobytes()).decode('ascii')


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'torch')
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = BiSeNet(19).eval()
    x = formula_input()
    sd = make_state_dict(model)
    model.load_state_dict(sd, strict=True)
    calibrate_batch_norm(model, sd, x)
    model.load_state_dict(sd, strict=True)  # the file's values, exactly, are what runs below
    assert len(sd) == 191, len(sd)

    zip_path = os.path.join(out_dir, 'bisenet-strided.pth')
    legacy_path = os.path.join(out_dir, 'bisenet-strided-legacy.pth')
    torch.save(sd, zip_path)
    torch.save(sd, legacy_path, _use_new_zipfile_serialization=False)
    # Both files load back to the same tensors, strides and all.
    for p in (zip_path, legacy_path):
        back = torch.load(p)
        assert list(back) == list(sd)
        for k in sd:
            assert torch.equal(back[k], sd[k]), (p, k)
        assert back['cp.resnet.conv1.weight'].stride() == (1, 3, 5, 7)

    with torch.no_grad():
        x64 = x.double()
        model64 = BiSeNet(19).double().eval()
        model64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in sd.items()}, strict=True)
        outs = model(x)
        outs64 = model64(x64)

    pixels = sampled_pixels()
    heads = {}
    for name, out, out64 in zip(('out', 'out16', 'out32'), outs, outs64):
        # NCHW -> (pixel, class): the layout the TypeScript model returns (NHWC).
        flat = out[0].permute(1, 2, 0).reshape(-1, 19)
        flat64 = out64[0].permute(1, 2, 0).reshape(-1, 19)
        top2v, top2i = flat64.topk(2, dim=1)
        top2 = top2v
        gap = top2v[:, 0] - top2v[:, 1]
        near = (gap < 1e-3).nonzero().flatten().tolist()
        heads[name] = {
            # float64 forward: the reference; float32 forward: how far PyTorch's own float32 is from it.
            'sampled': b64(flat64[pixels], '<f8'),
            'torchFloat32MaxAbsError': float((flat.double() - flat64).abs().max()),
            'argmax': b64(flat64.argmax(dim=1), 'u1'),
            'classSums': flat64.sum(dim=0).tolist(),
            'maxAbs': float(flat64.abs().max()),
            'minTop2Gap': float((top2[:, 0] - top2[:, 1]).min()),
            'classCounts': torch.bincount(flat64.argmax(dim=1), minlength=19).tolist(),
            # Pixels whose two best classes are within 1e-3: [pixel, gap, best, second]. Where a
            # float32 forward's error exceeds half the gap, either class is right to its precision.
            'nearTies': [[p, float(gap[p]), int(top2i[p, 0]), int(top2i[p, 1])] for p in near],
        }
    fixture = {
        'generatedBy': 'scripts/peers/bisenet_reference.py',
        'torch': torch.__version__,
        'height': HEIGHT,
        'width': WIDTH,
        'classes': 19,
        'sampledPixels': pixels,
        'heads': heads,
    }
    with open(os.path.join(out_dir, 'bisenet-reference.json'), 'w') as f:
        json.dump(fixture, f, indent=1)
        f.write('\n')
    for p in (zip_path, legacy_path):
        print(f'{p}: {os.path.getsize(p)} bytes')
    h = heads['out']
    print(f"out: max |logit| {h['maxAbs']:.3f}, min top-2 gap {h['minTop2Gap']:.2e}, float32 torch vs float64 {h['torchFloat32MaxAbsError']:.2e}, classes {h['classCounts']}")


if __name__ == '__main__':
    main()
