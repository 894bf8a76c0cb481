import { createServer } from 'node:net';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dealer } from 'zeromq';
import { launch } from '../../cluster/coordinator.js';
import { decodeCoordinatorMessage, decodeWorkerMessage, encode } from '../../cluster/protocol.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';
import { thrown } from '../helpers/thrown.js';

const report = {
  images: 8,
  seconds: 1.5,
  computeMs: 900,
  reduceMs: 100,
  waitMs: 3,
  lossSums: { total: 10, expression: 8, segmentation: 1, components: 1 },
  skipped: [],
  confusion: [[1, 0], [0, 1]],
  evalSkipped: [{ path: '/x.jpg', reason: 'missing file' }],
  checksum: 'ab'.repeat(32),
};

describe('the control channel: one schema per direction, checked on receipt', () => {
  it('round-trips every message type', () => {
    const messages = [
      { type: 'ready', rank: 0, backend: 'wasm', reason: 'requested', stepsPerEpoch: 3, parameters: 10, trainImages: 8, testImages: 4 },
      { type: 'heartbeat', rank: 1 },
      { type: 'progress', rank: 0, epoch: 1, step: 2, steps: 3, loss: 1.25, images: 8 },
      { type: 'epoch-done', rank: 1, epoch: 0, ...report },
      { type: 'checkpointed', rank: 0, epoch: 1, path: '/runs/a/checkpoints/epoch-0001' },
      { type: 'failed', rank: 1, error: { code: 'SLFER_INTERNAL', message: 'm', hint: 'h' } },
    ] as const;
    for (const m of messages) expect(decodeWorkerMessage(encode(m), 'rank 0')).toEqual(m);
    for (const m of [{ type: 'epoch', epoch: 2 }, { type: 'checkpoint', epoch: 1, testAccuracy: 0.5, best: true }, { type: 'stop' }] as const) {
      expect(decodeCoordinatorMessage(encode(m))).toEqual(m);
    }
  });

  it('refuses bytes that are not msgpack, an unknown type, a missing or mistyped field and an extra one, naming the sender and the field', () => {
    const cases: [Buffer, RegExp][] = [
      [Buffer.from([0xc1, 0xc1, 0xc1]), /not msgpack/],
      [pack({ type: 'launch-missiles', rank: 0 }), /"launch-missiles" message whose field "type"/],
      [pack({ type: 'heartbeat' }), /field "rank"/],
      [pack({ type: 'progress', rank: 0, epoch: 1, step: 'two', steps: 3, loss: 1, images: 8 }), /field "step"/],
      [pack({ type: 'epoch-done', rank: 0, epoch: 0, ...report, checksum: 'short' }), /field "checksum"/],
      [pack({ type: 'heartbeat', rank: 0, extra: 1 }), /field "\(root\)"|extra/],
      [pack([1, 2, 3]), /field/],
    ];
    for (const [frame, why] of cases) {
      const e = thrown(() => decodeWorkerMessage(frame, 'worker rank 3'));
      expect(e.code).toBe('SLFER_CLUSTER_PROTOCOL');
      expect(e.message).toContain('control message from worker rank 3 refused');
      expect(e.message).toMatch(why);
    }
    expect(thrown(() => decodeCoordinatorMessage(pack({ type: 'epoch' }))).message).toContain('from the coordinator');
  });
});

describe('launch with strangers on its control port', () => {
  let data: Awaited<ReturnType<typeof syntheticDataset>>;
  beforeAll(async () => {
    data = await syntheticDataset({ train: 16, test: 4, size: 32 });
  });
  afterAll(() => data.cleanup());

  it('ignores garbage and messages from peers that never registered, logs each once, and finishes the run', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    await new Promise<void>((r) => blocker.close(() => r()));
    const lines: string[] = [];
    const stranger = new Dealer();
    stranger.connect(`tcp://127.0.0.1:${port}`);
    // Sent while the run is under way: random bytes, a heartbeat and a fake epoch report.
    const pester = setInterval(() => {
      void stranger.send(Buffer.from([0xde, 0xad, 0xbe, 0xef])).catch(() => {});
      void stranger.send(encode({ type: 'heartbeat', rank: 0 })).catch(() => {});
    }, 200);
    try {
      const r = await launch({ config: tinyConfig(data.root, 32, { epochs: 1, batchSize: 4 }), workers: 2, port, out: join(data.base, 'run'), events: { log: (l) => lines.push(l) } });
      expect(r.metrics).toHaveLength(1);
    } finally {
      clearInterval(pester);
      stranger.close();
    }
    const ignored = lines.filter((l) => l.startsWith('ignored: '));
    expect(ignored.some((l) => l.includes('from an unregistered peer') && l.includes('not msgpack'))).toBe(true);
    expect(ignored.some((l) => l.includes('a "heartbeat" message from a peer that did not register'))).toBe(true);
    expect(new Set(ignored).size).toBe(ignored.length);
  });
});
