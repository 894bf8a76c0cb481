import { describe, expect, it } from 'vitest';
import { progressReporter } from '../../src/cli/progress.js';

function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, write: (s: string) => chunks.push(s) } as unknown as NodeJS.WriteStream };
}

const steps = (r: ReturnType<typeof progressReporter>) => {
  r.epochStart!({ epoch: 1, epochs: 2, steps: 20, lr: 1e-3 });
  for (let s = 1; s <= 20; s++) r.step!({ epoch: 1, step: s, steps: 20, loss: 1.5, images: s * 16, seconds: s * 0.5 });
};

describe('progress', () => {
  it('draws one redrawn bar with img/s and ETA on a terminal', () => {
    const { chunks, stream } = fakeStream(true);
    steps(progressReporter(stream));
    const bars = chunks.filter((c) => c.startsWith('\r'));
    expect(bars).toHaveLength(20);
    expect(bars[9]).toMatch(/\[#{12}\.{12}\] 10\/20 {2}loss 1\.5000 {2}32\.0 img\/s {2}ETA 0:05/);
  });

  it('writes plain lines, about ten per epoch, to a pipe', () => {
    const { chunks, stream } = fakeStream(false);
    steps(progressReporter(stream));
    expect(chunks.join('')).not.toContain('\r');
    const lines = chunks.filter((c) => c.includes('epoch 1 step '));
    expect(lines.length).toBeGreaterThanOrEqual(10);
    expect(lines.length).toBeLessThanOrEqual(11);
    expect(lines.at(-1)).toContain('step 20/20');
  });
});
