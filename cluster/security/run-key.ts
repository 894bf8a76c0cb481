import { createPrivateKey, createPublicKey } from 'node:crypto';
import { closeSync, fchmodSync, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { curveKeyPair } from 'zeromq';
import { errors, isSlferError } from '../../src/errors.js';
import { fsyncPath } from '../../src/util/atomic.js';

/**
 * The run key: ONE CURVE keypair shared by every process of a run. Servers use it as their server
 * key, clients as their client key, and the ZAP handler admits exactly its public key, so a process
 * proves it belongs to the run by holding the file, and nothing else is needed (no per-rank keys to
 * distribute). Anyone who can read the file can join the run: it is kept 0600 (or 0400).
 *
 * File format (text, UTF-8; `#` lines and blank lines are ignored; both keys are required):
 *
 *   # slfer-dist run key: one CURVE keypair for every process of a run. Keep it secret.
 *   public-key = <40 Z85 characters>
 *   secret-key = <40 Z85 characters>
 *
 * Z85 is ZeroMQ's text encoding of the 32-byte Curve25519 keys (what curveKeyPair() and
 * `curve_keygen` print). The public key is redundant (it follows from the secret one) but lets a
 * human compare files; it is checked against the secret key on every read.
 */

export interface RunKey {
  /** Z85, 40 characters. */
  readonly publicKey: string;
  /** Z85, 40 characters. */
  readonly secretKey: string;
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_VALUE = new Map([...Z85].map((c, i) => [c, i]));
const KEY_Z85_CHARS = 40;

/** The 32 bytes a Z85 key stands for, or a description of what is wrong with it. */
export function z85Decode(text: string): Buffer | string {
  if (text.length % 5 !== 0) return `${text.length} characters, not a multiple of 5`;
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let v = 0;
    for (let j = 0; j < 5; j++) {
      const d = Z85_VALUE.get(text[i + j]);
      if (d === undefined) return `character ${JSON.stringify(text[i + j])} at position ${i + j + 1} is not Z85`;
      v = v * 85 + d;
    }
    if (v > 0xffffffff) return `"${text.slice(i, i + 5)}" at position ${i + 1} is out of range`;
    out.writeUInt32BE(v, (i / 5) * 4);
  }
  return out;
}

export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw errors.internal(`z85Encode: ${bytes.length} bytes is not a multiple of 4`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let v = view.getUint32(i);
    const group = new Array<string>(5);
    for (let j = 4; j >= 0; j--) {
      group[j] = Z85[v % 85];
      v = Math.floor(v / 85);
    }
    s += group.join('');
  }
  return s;
}

/**
 * The public key of a CURVE secret key (Z85 in, Z85 out). CURVE keys are X25519 keys (libzmq's
 * crypto_box keypair: public = scalarmult_base(secret)), which node:crypto computes directly, so a
 * read key is checked without a handshake.
 */
export function publicKeyOf(secretKeyZ85: string): string {
  const secret = z85Decode(secretKeyZ85);
  if (typeof secret === 'string' || secret.length !== 32) throw errors.invalidArgument('CURVE secret key', typeof secret === 'string' ? secret : `${secret.length} bytes, not 32`, 'pass a 40-character Z85 key');
  // A JWK private key needs an x; node derives the real public key from d and ignores this one.
  const priv = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: secret.toString('base64url'), x: Buffer.alloc(32).toString('base64url') }, format: 'jwk' });
  const jwk = createPublicKey(priv).export({ format: 'jwk' });
  return z85Encode(Buffer.from(String(jwk.x), 'base64url'));
}

/** A new random run key (libzmq's generator). */
export function generateRunKey(): RunKey {
  const { publicKey, secretKey } = curveKeyPair();
  return { publicKey, secretKey };
}

/** The file text for a key. */
export function formatRunKey(key: RunKey, made = new Date()): string {
  return [
    '# slfer-dist run key: one CURVE keypair for every process of a run (slfer-dist ... --auth-key FILE).',
    '# Keep it secret: anyone who can read this file can join the run. Keep it mode 0600 (or 0400).',
    `# Made by \`slfer-dist keygen\` on ${made.toISOString()}.`,
    `public-key = ${key.publicKey}`,
    `secret-key = ${key.secretKey}`,
    '',
  ].join('\n');
}

/** A key from file text; `file` names it in errors (with the line). */
export function parseRunKey(text: string, file: string): RunKey {
  const found: Partial<Record<'public-key' | 'secret-key', { value: string; line: number }>> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    // Split at the first '=' only: Z85 itself uses '=' (and '#').
    const eq = line.indexOf('=');
    const name = eq < 0 ? line : line.slice(0, eq).trim();
    if (eq < 0 || (name !== 'public-key' && name !== 'secret-key')) {
      throw errors.runKeyInvalid(file, i + 1, `expected "public-key = …" or "secret-key = …", found ${JSON.stringify(line.slice(0, 60))}`);
    }
    if (found[name]) throw errors.runKeyInvalid(file, i + 1, `${name} given twice (first on line ${found[name].line})`);
    const value = line.slice(eq + 1).trim();
    const problem = value.length !== KEY_Z85_CHARS ? `${value.length} characters, a CURVE key has ${KEY_Z85_CHARS}` : z85Decode(value);
    if (typeof problem === 'string') throw errors.runKeyInvalid(file, i + 1, `${name} is not a Z85 CURVE key: ${problem}`);
    found[name] = { value, line: i + 1 };
  }
  const pub = found['public-key'];
  const sec = found['secret-key'];
  if (!pub || !sec) throw errors.runKeyInvalid(file, undefined, `no ${pub ? 'secret-key' : 'public-key'} line (a run key file holds both)`);
  if (publicKeyOf(sec.value) !== pub.value) {
    throw errors.runKeyInvalid(file, pub.line, 'public-key is not the public key of secret-key (the two lines come from different keypairs)');
  }
  return { publicKey: pub.value, secretKey: sec.value };
}

/**
 * A Kubernetes Secret volume holds each key as a symlink into `..data/` (the atomic writer's
 * timestamped folder): a refusal there is fixed in the pod spec, not with chmod.
 */
function inKubernetesSecretVolume(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink() && readlinkSync(path).startsWith('..data/');
  } catch {
    return false;
  }
}

/**
 * Reads and checks a run key file. Refuses (SLFER_RUN_KEY_UNSAFE) a file others can read: mode
 * 0600 or 0400 pass. The mode checked is the file's own (fstat of what was opened, so a symlink,
 * as in a Kubernetes Secret volume, is judged by its target). In a Kubernetes Secret volume group
 * read is also accepted: with a pod `fsGroup` the kubelet adds it to every mode (0400 becomes 0440,
 * kubernetes/kubernetes#57923) and the group is the pod's own; world read never passes.
 */
export function readRunKey(path: string): RunKey {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw errors.runKeyNotFound(path, e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw errors.runKeyNotFound(path, new Error('not a regular file'));
    const kubernetes = inKubernetesSecretVolume(path);
    const forbidden = kubernetes ? 0o007 : 0o077;
    if ((st.mode & forbidden) !== 0) throw errors.runKeyUnsafe(path, st.mode, kubernetes);
    if (st.size > 64 * 1024) throw errors.runKeyInvalid(path, undefined, `${st.size} bytes: far too large for a run key (wrong file?)`);
    return parseRunKey(readFileSync(fd, 'utf8'), path);
  } catch (e) {
    if (isSlferError(e)) throw e;
    throw errors.runKeyNotFound(path, e);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a run key (a new one unless `key` is given) and returns it. The file is created 0600 and
 * filled under a temporary name beside it, so it is never readable by others nor seen half-written;
 * then it is hard-linked into place, which fails if `path` exists (no check-then-write race), or
 * with `force` renamed over it.
 */
export function writeRunKey(path: string, opts: { force?: boolean; key?: RunKey } = {}): RunKey {
  const key = opts.key ?? generateRunKey();
  if (publicKeyOf(key.secretKey) !== key.publicKey) throw errors.invalidArgument('writeRunKey key', 'publicKey is not the public key of secretKey', 'pass a keypair from curveKeyPair() or generateRunKey()');
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      fchmodSync(fd, 0o600); // the umask can only take bits away; make it exactly 0600
      writeSync(fd, formatRunKey(key));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (opts.force) {
      renameSync(tmp, path);
    } else {
      try {
        linkSync(tmp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw errors.runKeyExists(path);
        throw e;
      }
    }
    fsyncPath(dirname(path));
  } catch (e) {
    if (isSlferError(e)) throw e;
    throw errors.invalidArgument(`run key ${path}`, `cannot be written: ${(e as Error).message}`, 'choose a folder you can write to for --out');
  } finally {
    rmSync(tmp, { force: true });
  }
  return key;
}
