/**
 * Writes a state dict as torch.save does by default (zip format, pickle protocol 2), so that
 * `torch.load(path)` reads it, with `weights_only=True` too: the pickle names only
 * collections.OrderedDict, torch._utils._rebuild_tensor_v2 and storage types.
 */
import { zipSync, type Zippable } from 'fflate';
import { writeFileAtomic } from '../util/atomic.js';
import { ELEMENT_BYTES, storageTypeOf, type TorchTensor } from './tensor.js';

/** PyTorchStreamWriter aligns every record to 64 bytes (so torch.load(mmap=True) can map it). */
const ALIGN = 64;
/** The extra field PyTorch pads with ("FB"). */
const PAD_FIELD = 0x4246;

export function writeStateDict(path: string, sd: Map<string, TorchTensor>, archiveName = 'archive'): void {
  const p = new PickleWriter();
  p.proto(2);
  p.global('collections', 'OrderedDict');
  p.emptyTuple();
  p.reduce();
  p.mark();
  let key = 0;
  const records: [string, Uint8Array][] = [];
  for (const [name, t] of sd) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel) throw new Error(`${name}: ${t.data.length} values for shape [${t.shape}]`);
    p.unicode(name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.mark();
    // persistent id ('storage', torch.FloatStorage, key, 'cpu', numel)
    p.mark();
    p.unicode('storage');
    p.global('torch', storageTypeOf(t.dtype));
    p.unicode(String(key));
    p.unicode('cpu');
    p.int(numel);
    p.tuple();
    p.binpersid();
    p.int(0);
    p.intTuple(t.shape);
    p.intTuple(t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1)));
    p.bool(false);
    p.global('collections', 'OrderedDict');
    p.emptyTuple();
    p.reduce();
    p.tuple();
    p.reduce();
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, numel * ELEMENT_BYTES[t.dtype]);
    records.push([`data/${key}`, bytes]);
    key++;
  }
  p.setItems();
  p.stop();

  const entries: [string, Uint8Array][] = [['data.pkl', p.bytes()], ['byteorder', utf8('little')], ...records, ['version', utf8('3\n')]];
  const zippable: Zippable = {};
  let offset = 0;
  for (const [name, data] of entries) {
    const full = `${archiveName}/${name}`;
    // A local header is 30 bytes, the name, then the extra fields (id, length, padding).
    const unpadded = offset + 30 + utf8(full).length + 4;
    const pad = (ALIGN - (unpadded % ALIGN)) % ALIGN;
    zippable[full] = [data, { level: 0, extra: { [PAD_FIELD]: new Uint8Array(pad) }, mtime: new Date('1980-01-01T00:00:00Z') }];
    offset = unpadded + pad + data.length;
  }
  writeFileAtomic(path, zipSync(zippable));
}

const utf8 = (s: string) => new TextEncoder().encode(s);

/** The few pickle opcodes a state dict needs, protocol 2. */
class PickleWriter {
  private readonly chunks: number[] = [];
  private push(...b: number[]) {
    for (const x of b) this.chunks.push(x);
  }
  private u32(n: number) {
    this.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  proto(v: number) {
    this.push(0x80, v);
  }
  global(module: string, name: string) {
    this.push(0x63, ...utf8(`${module}\n${name}\n`));
  }
  mark() {
    this.push(0x28);
  }
  emptyTuple() {
    this.push(0x29);
  }
  tuple() {
    this.push(0x74);
  }
  reduce() {
    this.push(0x52);
  }
  binpersid() {
    this.push(0x51);
  }
  setItems() {
    this.push(0x75);
  }
  stop() {
    this.push(0x2e);
  }
  bool(b: boolean) {
    this.push(b ? 0x88 : 0x89);
  }
  unicode(s: string) {
    const b = utf8(s);
    this.push(0x58);
    this.u32(b.length);
    this.push(...b);
  }
  int(n: number) {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`cannot pickle ${n}`);
    if (n < 2 ** 31) {
      this.push(0x4a);
      this.u32(n);
      return;
    }
    // LONG1: little-endian two's complement, with a zero byte so it stays positive.
    const bytes: number[] = [];
    for (let v = BigInt(n); v > 0n; v >>= 8n) bytes.push(Number(v & 0xffn));
    if (bytes[bytes.length - 1] & 0x80) bytes.push(0);
    this.push(0x8a, bytes.length, ...bytes);
  }
  intTuple(xs: number[]) {
    this.mark();
    for (const x of xs) this.int(x);
    this.tuple();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}
