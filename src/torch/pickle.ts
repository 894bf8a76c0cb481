/**
 * A restricted unpickler: the opcodes of pickle protocols 0-5 that data needs, and no code. A
 * pickle is a program (GLOBAL names any callable, REDUCE calls it); here GLOBAL asks the caller's
 * resolver, which answers only for an allow-list, and REDUCE/BUILD/NEWOBJ run only what that
 * resolver returned. Nothing is ever looked up by name in JavaScript.
 *
 * Why not the npm `pickleparser` (0.2.1): it reads LONG1 as unsigned and refuses more than 8 bytes
 * (torch's legacy magic number is a 10-byte LONG1), its DICT opcode writes object properties into
 * Maps, and unknown globals become permissive objects instead of an error.
 */

/** A value a pickle built: Python's dict is a Map (any key type), list and tuple are arrays. */
export type PyValue = unknown;

/** What a resolved global does when the pickle calls it (REDUCE, NEWOBJ) or sets its state (BUILD). */
export interface PyCallable {
  readonly qualifiedName: string;
  call(args: PyValue[]): PyValue;
}

export interface UnpickleOptions {
  /** `module.name` → a callable, or undefined to refuse (the caller names the file in its error). */
  resolveGlobal(module: string, name: string): PyCallable | undefined;
  /** BINPERSID/PERSID: torch's storage references. */
  persistentLoad?(pid: PyValue): PyValue;
  /** BUILD on an object this module does not know: return false to refuse. */
  build?(target: PyValue, state: PyValue): boolean;
}

export class PickleError extends Error {
  constructor(
    message: string,
    /** The refused global, when that is why. */
    readonly global?: string,
  ) {
    super(message);
    this.name = 'PickleError';
  }
}

const MARK = Symbol('mark');

/** Unpickles one pickle starting at `offset`; returns its value and where it ended. */
export function unpickle(bytes: Uint8Array, offset: number, options: UnpickleOptions): { value: PyValue; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = offset;
  const stack: PyValue[] = [];
  const memo = new Map<number, PyValue>();
  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) throw new PickleError(`truncated: needs ${n} more bytes at offset ${pos} of ${bytes.length}`);
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) throw new PickleError(`length ${v} at offset ${pos - 8} exceeds the file`);
    return Number(v);
  };
  const take = (n: number) => (need(n), (pos += n), bytes.subarray(pos - n, pos));
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw new PickleError(`truncated: unterminated line at offset ${pos}`);
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const utf8 = (b: Uint8Array) => new TextDecoder('utf-8', { fatal: true }).decode(b);
  const pop = () => {
    if (stack.length === 0) throw new PickleError(`stack underflow at offset ${pos - 1}`);
    const v = stack.pop();
    if (v === MARK) throw new PickleError(`unexpected mark at offset ${pos - 1}`);
    return v;
  };
  const top = () => {
    const v = stack[stack.length - 1];
    if (stack.length === 0 || v === MARK) throw new PickleError(`stack underflow at offset ${pos - 1}`);
    return v;
  };
  const popMark = () => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) throw new PickleError(`no mark on the stack at offset ${pos - 1}`);
    const items = stack.splice(at);
    items.shift();
    return items;
  };
  const callable = (f: PyValue, what: string): PyCallable => {
    if (!isCallable(f)) throw new PickleError(`${what} at offset ${pos - 1} applied to something that is not a permitted global`);
    return f;
  };
  const global = (module: string, name: string) => {
    const f = options.resolveGlobal(module, name);
    if (!f) throw new PickleError(`the file asks for the Python global ${module}.${name}, which a state dict never needs`, `${module}.${name}`);
    return f;
  };
  const setItems = (dict: PyValue, items: PyValue[]) => {
    if (!(dict instanceof Map)) throw new PickleError(`SETITEM(S) at offset ${pos - 1} on something that is not a dict`);
    if (items.length % 2) throw new PickleError(`SETITEMS at offset ${pos - 1} with an odd number of items`);
    for (let i = 0; i < items.length; i += 2) dict.set(hashable(items[i]), items[i + 1]);
  };
  const append = (list: PyValue, items: PyValue[]) => {
    if (!Array.isArray(list) || Object.isFrozen(list)) throw new PickleError(`APPEND(S) at offset ${pos - 1} on something that is not a list`);
    list.push(...items);
  };
  const memoGet = (i: number) => {
    if (!memo.has(i)) throw new PickleError(`memo ${i} read before it was written (offset ${pos})`);
    return memo.get(i);
  };
  const decimalInt = (s: string): PyValue => {
    const t = s.replace(/L$/, '');
    if (t === '00') return false;
    if (t === '01') return true;
    if (!/^[-+]?\d+$/.test(t)) throw new PickleError(`bad integer "${s}" at offset ${pos}`);
    const big = BigInt(t);
    return smallInt(big);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) throw new PickleError(`pickle protocol ${bytes[pos - 1]} is newer than 5`);
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) throw new PickleError(`STOP at offset ${pos - 1} with ${stack.length} values on the stack`);
        return { value: pop(), end: pos };
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x30: // POP
        if (stack.pop() === undefined) throw new PickleError(`stack underflow at offset ${pos - 1}`);
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x49: // INT
        stack.push(decimalInt(line()));
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4c: // LONG
        stack.push(decimalInt(line()));
        break;
      case 0x8a: // LONG1
        stack.push(smallInt(signedLE(take(u8()))));
        break;
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0) throw new PickleError(`negative LONG4 length at offset ${pos - 4}`);
        stack.push(smallInt(signedLE(take(n))));
        break;
      }
      case 0x46: { // FLOAT
        const s = line();
        const v = Number(s);
        if (Number.isNaN(v) && !/nan/i.test(s)) throw new PickleError(`bad float "${s}" at offset ${pos}`);
        stack.push(v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x53: // STRING (protocol 0: a quoted repr)
        stack.push(unquote(line(), pos));
        break;
      case 0x54: { // BINSTRING
        const n = i32();
        stack.push(new TextDecoder('latin1').decode(take(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(new TextDecoder('latin1').decode(take(u8())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape; the ASCII subset is all a state dict uses)
        stack.push(line());
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(take(u64())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(take(u64()));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x61: { // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(Object.freeze([]));
        break;
      case 0x74: // TUPLE
        stack.push(Object.freeze(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(Object.freeze([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        stack.push(Object.freeze([pop(), b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(Object.freeze([pop(), b, c]));
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: { // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) throw new PickleError(`ADDITEMS at offset ${pos - 1} on something that is not a set`);
        for (const i of items) s.add(hashable(i));
        break;
      }
      case 0x91: // FROZENSET
        stack.push(new Set(popMark().map(hashable)));
        break;
      case 0x63: { // GLOBAL
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError(`STACK_GLOBAL at offset ${pos - 1} without two strings`);
        stack.push(global(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const f = callable(pop(), 'REDUCE');
        if (!Array.isArray(args)) throw new PickleError(`REDUCE at offset ${pos - 1} without an argument tuple`);
        stack.push(f.call(args));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const f = callable(pop(), 'NEWOBJ');
        if (!Array.isArray(args)) throw new PickleError(`NEWOBJ at offset ${pos - 1} without an argument tuple`);
        stack.push(f.call(args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const target = top();
        if (!options.build?.(target, state)) throw new PickleError(`BUILD at offset ${pos - 1} sets the state of an object a state dict does not hold`);
        break;
      }
      case 0x50: // PERSID
        stack.push(persistent(line()));
        break;
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x70: // PUT
        memo.set(Number(decimalInt(line())), top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x67: // GET
        stack.push(memoGet(Number(decimalInt(line()))));
        break;
      case 0x68: // BINGET
        stack.push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(u32()));
        break;
      default:
        throw new PickleError(`opcode 0x${op.toString(16).padStart(2, '0')} at offset ${pos - 1} is not one a state dict uses`);
    }
  }

  function persistent(pid: PyValue): PyValue {
    if (!options.persistentLoad) throw new PickleError(`persistent id at offset ${pos - 1} in a pickle that may not have any`);
    return options.persistentLoad(pid);
  }
}

export function isCallable(v: PyValue): v is PyCallable {
  return typeof v === 'object' && v !== null && typeof (v as PyCallable).call === 'function' && typeof (v as PyCallable).qualifiedName === 'string';
}

/** Python ints: a JS number when exact, else a bigint. */
function smallInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** LONG1/LONG4's payload: little-endian two's complement. */
function signedLE(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b.length > 0 && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return v;
}

/** Dict keys and set items must be hashable in Python; here they must be primitives to key a Map. */
function hashable(k: PyValue): PyValue {
  if (k === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof k)) return k;
  if (Array.isArray(k) && Object.isFrozen(k)) return JSON.stringify(k, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  throw new PickleError('a dict key or set item is not a string, number or tuple');
}

function unquote(s: string, pos: number): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) throw new PickleError(`bad STRING at offset ${pos}`);
  return s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) =>
    e[0] === 'x' ? String.fromCharCode(parseInt(e.slice(1), 16)) : ({ n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"' } as Record<string, string>)[e] ?? e,
  );
}
