/** One full SLFER step (forward, joint loss, gradients) on a backend, and the check that it matches cpu. */
import { expect } from 'vitest';
import type { Batch } from '../../src/data/types.js';
import { selectBackend, type BackendRequest } from '../../src/engine/backend.js';
import { SlferModel } from '../../src/model/slfer.js';
import { computeGradients, finishStep, readLosses } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';

function makeBatch(S: number, B: number): Batch {
  const rng = new Rng(21);
  return {
    size: B,
    inputSize: S,
    images: Float32Array.from({ length: B * S * S * 3 }, () => rng.normal()),
    labels: Int32Array.from({ length: B }, (_, i) => [0, 3, 5, 6][i % 4]),
    masks: Uint8Array.from({ length: B * S * S }, (_, i) => ((i % S) >> 3) % 8),
    components: Float32Array.from({ length: B * 8 }, (_, i) => (i % 2 ? 1 : 0)),
    ids: [],
    skipped: [],
    waitMs: 0,
  };
}

async function gradientsOn(backend: BackendRequest, S: number, B: number) {
  await selectBackend(backend);
  const model = new SlferModel({ variant: 'proposed', width: 0.125, inputSize: S, seReduction: 16, numExpressions: 7, numParts: 8 }, 4);
  const r = computeGradients(model, makeBatch(S, B), { lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 });
  const grads = await Promise.all(r.grads.map((g) => g.data() as Promise<Float32Array>));
  const names = model.store.paramSpecs.map((p) => p.name);
  finishStep(model, r.bnStats);
  r.grads.forEach((g) => g.dispose());
  const loss = (await readLosses(r.losses)).total;
  model.dispose();
  return { grads, names, loss };
}

/** Loss within 1e-5 and every parameter's gradient within 1e-3 (relative L2) of the cpu reference. */
export async function expectStepMatchesCpu(backend: BackendRequest, o: { size?: number; batch?: number } = {}): Promise<void> {
  const S = o.size ?? 64;
  const B = o.batch ?? 4;
  const cpu = await gradientsOn('cpu', S, B);
  const other = await gradientsOn(backend, S, B);
  expect(Math.abs(other.loss - cpu.loss) / cpu.loss).toBeLessThan(1e-5);
  const worst = cpu.grads.map((ref, i) => {
    let num = 0;
    let den = 1e-12;
    for (let k = 0; k < ref.length; k++) {
      num += (other.grads[i][k] - ref[k]) ** 2;
      den += ref[k] ** 2;
    }
    return { name: cpu.names[i], rel: Math.sqrt(num / den) };
  });
  for (const w of worst) expect(w.rel, w.name).toBeLessThan(1e-3);
}
