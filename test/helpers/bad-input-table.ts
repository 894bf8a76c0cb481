/**
 * The bad-input table on one engine: a short training on every case of ./bad-input.ts, each checked
 * against its promised treatment, with no tensor left behind. One test file per engine, so each
 * runs in a process of its own (pure wasm is SLFER_NATIVE=off for the whole process).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseDataset, caseDataset, CASES, expectTreatment, liveTensors, trainCase, treatmentFor, type Treatment } from './bad-input.js';

const said = (t: Treatment) => (t.kind === 'used' ? 'used' : t.kind === 'skipped' ? 'skipped and listed' : `stops the run (${t.code})`);

/**
 * `skip`: why the engine cannot run here ('' when it can). `convolutions`: what the engine must say
 * runs its convolutions (wasm: oneDNN or XNNPACK), so a table cannot pass on the wrong engine.
 */
export function describeBadInputs(backend: string, skip = '', convolutions?: RegExp): void {
  describe.skipIf(skip !== '')(`every bad input on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    let base: Awaited<ReturnType<typeof baseDataset>>;
    beforeAll(async () => {
      base = await baseDataset();
    });
    afterAll(() => base?.remove());

    for (const c of CASES) {
      it(`${c.kind}: ${c.name} is ${said(c.treatment)}`, async () => {
        const root = await caseDataset(base.root, c, backend);
        const before = liveTensors();
        const outcome = await trainCase(root, backend, c);
        expectTreatment(outcome, treatmentFor(c, root), root);
        if (outcome.ok) {
          expect(outcome.result.engine.backend).toBe(backend);
          if (convolutions) expect(outcome.result.engine.convolutions).toMatch(convolutions);
        }
        expect(liveTensors(), 'tensors left behind').toBe(before);
      });
    }
  });
}
