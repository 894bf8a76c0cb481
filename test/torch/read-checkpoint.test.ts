import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SlferError } from '../../src/errors.js';
import { readTorchFile } from '../../src/torch/read-torch-file.js';
import { readStateDict, toFloat32, type StateDict } from '../../src/torch/state-dict.js';
import { writeStateDict } from '../../src/torch/write-torch-file.js';
import { rejected } from '../helpers/thrown.js';

// Every file here was written by PyTorch 1.13 itself (scripts/peers/torch_fixtures.py).
const FIX = join(import.meta.dirname, '../fixtures/torch');
const tmp = mkdtempSync(join(tmpdir(), 'slfer-torch-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Expected {
  dtype: string;
  shape: number[];
  values: (number | string)[];
}
const expected = JSON.parse(readFileSync(join(FIX, 'tensors.expected.json'), 'utf8')) as Record<string, Expected>;


function valuesOf(sd: StateDict, key: string): (number | string)[] {
  const t = sd.get(key)!;
  return t.data instanceof BigInt64Array ? Array.from(t.data, String) : Array.from(toFloat32(t));
}

describe.each(['zip', 'legacy'])('reading a torch.save file (%s format)', (format) => {
  const file = join(FIX, `tensors.${format}.pth`);

  it('reads every dtype, and views with offsets and strides, as the values PyTorch holds', async () => {
    const sd = await readStateDict(file);
    expect([...sd.keys()]).toEqual(Object.keys(expected));
    for (const [key, want] of Object.entries(expected)) {
      const t = sd.get(key)!;
      expect(t.dtype, key).toBe(want.dtype);
      expect(t.shape, key).toEqual(want.shape);
      const got = valuesOf(sd, key);
      // float16, bfloat16 and float64 were widened or narrowed exactly as float32 rounds them.
      expect(got, key).toEqual(want.values.map((v) => (typeof v === 'number' ? Math.fround(v) : v)));
    }
  });

  it('unwraps the state dict and reads the plain data beside it (numpy scalars, big integers, tuples)', () => {
    const root = readTorchFile(file).root as Map<string, unknown>;
    expect(readTorchFile(file).format).toBe(format);
    expect(root.get('epoch')).toBe(3);
    expect(root.get('best_acc')).toBe(0.875);
    expect(root.get('arch')).toBe('resnet18');
    expect(root.get('history')).toEqual([1, 2.5, [3, 'x']]);
    expect(root.get('big')).toBe(2n ** 70n);
    expect(root.get('neg')).toBe(-(2n ** 70n));
  });

  it('names the file when it is truncated, at every length', async () => {
    const bytes = readFileSync(file);
    const cut = join(tmp, `cut.${format}.pth`);
    for (const at of [0, 1, 16, bytes.length >> 2, bytes.length >> 1, bytes.length - 40, bytes.length - 1]) {
      writeFileSync(cut, bytes.subarray(0, at));
      const e = await rejected(readStateDict(cut));
      expect(e, `cut at ${at}`).toBeInstanceOf(SlferError);
      expect(e.code).toBe('SLFER_TORCH_FILE_INVALID');
      expect(e.message).toContain(cut);
    }
  });

  it('never fails with anything but a typed error when bytes are damaged', async () => {
    const bytes = readFileSync(file);
    const bad = join(tmp, `bad.${format}.pth`);
    let refused = 0;
    // 300 single-byte corruptions at positions spread over the file (deterministic).
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(bytes);
      const at = (i * 2654435761) % b.length;
      b[at] ^= 1 + (i % 255);
      writeFileSync(bad, b);
      try {
        await readStateDict(bad);
      } catch (e) {
        expect(e, `byte ${at}`).toBeInstanceOf(SlferError);
        expect((e as SlferError).message).toContain(bad);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });
});

describe('what a checkpoint may ask for', () => {
  it('refuses a pickle that calls os.system, naming the global, without running it', async () => {
    const e = await rejected(readStateDict(join(FIX, 'unsafe.pth')));
    expect(e.code).toBe('SLFER_TORCH_FILE_UNSAFE');
    expect(e.message).toContain('posix.system');
    expect(e.hint).toContain('state_dict()');
  });

  it('refuses a whole pickled module (torch.save(model)), naming its class', async () => {
    const e = await rejected(readStateDict(join(FIX, 'whole-module.pth')));
    expect(e.code).toBe('SLFER_TORCH_FILE_UNSAFE');
    expect(e.message).toContain('torch.nn.modules.linear.Linear');
  });

  it('says what a file is when it is not a torch file at all', async () => {
    const png = join(tmp, 'not-a-checkpoint.pth');
    writeFileSync(png, Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'));
    const e = await rejected(readStateDict(png));
    expect(e.code).toBe('SLFER_TORCH_FILE_INVALID');
    expect(e.message).toMatch(/neither a zip .* nor a legacy/);
    const missing = await rejected(readStateDict(join(tmp, 'nope.pth')));
    expect(missing.code).toBe('SLFER_TORCH_FILE_INVALID');
    expect(missing.message).toContain('ENOENT');
  });
});

describe('the published MS-Celeb-1M checkpoints', () => {
  it("reads DREAM's legacy ijba_res18_naive.pth.tar: module. prefix stripped, feature and 87,020-way fc kept", async () => {
    const sd = await readStateDict(join(FIX, 'ijba-res18-naive.legacy.pth.tar'));
    expect(sd.get('conv1.weight')!.shape).toEqual([64, 3, 7, 7]);
    expect(sd.get('feature.weight')!.shape).toEqual([256, 512]);
    expect(sd.get('fc.weight')!.shape).toEqual([87020, 256]);
    expect([...sd.keys()].some((k) => k.startsWith('module.'))).toBe(false);
  });

  it("reads a torchvision resnet18 state dict under 'state_dict' (zip)", async () => {
    const sd = await readStateDict(join(FIX, 'resnet18-msceleb.zip.pth'));
    const keys = JSON.parse(readFileSync(join(FIX, 'resnet18-msceleb.keys.json'), 'utf8')) as Record<string, number[]>;
    expect(Object.fromEntries([...sd].map(([k, t]) => [k, t.shape]))).toEqual(keys);
    expect(sd.get('layer1.0.bn1.num_batches_tracked')!.dtype).toBe('int64');
  });
});

describe('writing a state dict for PyTorch', () => {
  it('round-trips float32 and int64 tensors through the zip format', async () => {
    const sd: StateDict = new Map([
      ['conv.weight', { dtype: 'float32', shape: [2, 1, 2, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) }],
      ['bn.num_batches_tracked', { dtype: 'int64', shape: [], data: BigInt64Array.from([12n]) }],
      ['empty', { dtype: 'float32', shape: [0], data: new Float32Array(0) }],
    ]);
    const file = join(tmp, 'written.pth');
    writeStateDict(file, sd);
    expect(readTorchFile(file).format).toBe('zip');
    expect(await readStateDict(file)).toEqual(sd);
  });

  it('aligns every record to 64 bytes as PyTorchStreamWriter does', () => {
    const file = join(tmp, 'aligned.pth');
    const sd: StateDict = new Map([
      ['a', { dtype: 'float32', shape: [3], data: Float32Array.from([1, 2, 3]) }],
      ['bb', { dtype: 'float32', shape: [1], data: Float32Array.from([4]) }],
    ]);
    writeStateDict(file, sd);
    const b = readFileSync(file);
    const starts: number[] = [];
    for (let at = b.indexOf('PK\x03\x04'); at >= 0; at = b.indexOf('PK\x03\x04', at + 4)) {
      const name = b.readUInt16LE(at + 26);
      const extra = b.readUInt16LE(at + 28);
      starts.push(at + 30 + name + extra);
    }
    expect(starts.length).toBe(5); // data.pkl, byteorder, two storages, version
    for (const s of starts) expect(s % 64).toBe(0);
  });

  it('writes atomically: a failed write leaves the old file', async () => {
    const file = join(tmp, 'keep.pth');
    copyFileSync(join(FIX, 'tensors.zip.pth'), file);
    expect(() => writeStateDict(file, new Map([['x', { dtype: 'float32', shape: [4], data: new Float32Array(2) }]]))).toThrow(/2 values for shape \[4\]/);
    expect((await readStateDict(file)).size).toBe(Object.keys(expected).length);
  });
});
