import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mergeConfig, readConfigFile, resolveConfig } from '../src/config.js';
import { SlferError } from '../src/errors.js';
import { pipelineOptionsOf } from '../src/train/model-config.js';

const codeAndMessage = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SlferError);
    return { code: (e as SlferError).code, message: (e as SlferError).message };
  }
  throw new Error('expected an error');
};

describe('config', () => {
  it('fills the paper defaults', () => {
    const c = resolveConfig({});
    expect(c.train).toMatchObject({ epochs: 40, batchSize: 16, lr: 1e-4, beta1: 0.5, beta2: 0.999, milestones: [10, 18, 25, 32], gamma: 0.1 });
    expect(c.loss).toEqual({ lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 });
    expect(c.model).toMatchObject({ variant: 'proposed', inputSize: 224, width: 1 });
  });

  it('stops on an unknown field, naming it', () => {
    const e = codeAndMessage(() => resolveConfig({ train: { lrr: 0.1 } }, 'my.json'));
    expect(e.code).toBe('SLFER_CONFIG_INVALID');
    expect(e.message).toContain('my.json');
    expect(e.message).toContain('"train.lrr"');
  });

  it('stops on a mistyped field, naming it', () => {
    const e = codeAndMessage(() => resolveConfig({ train: { epochs: 'ten' } }));
    expect(e.message).toContain('"train.epochs"');
    const f = codeAndMessage(() => resolveConfig({ model: { inputSize: 100 } }));
    expect(f.message).toContain('"model.inputSize"');
    expect(f.message).toContain('multiple of 32');
  });

  it('normalises inputs with ImageNet statistics unless told otherwise, and hands them to the pipeline', () => {
    const c = resolveConfig({});
    expect(c.data.mean).toEqual([0.485, 0.456, 0.406]);
    expect(c.data.std).toEqual([0.229, 0.224, 0.225]);
    const unit = resolveConfig({ data: { mean: [0, 0, 0], std: [1, 1, 1] } });
    expect(pipelineOptionsOf(unit, { withMasks: false })).toMatchObject({ mean: [0, 0, 0], std: [1, 1, 1] });
    expect(codeAndMessage(() => resolveConfig({ data: { std: [1, 0, 1] } }))).toMatchObject({ code: 'SLFER_CONFIG_INVALID', message: expect.stringContaining('"data.std.1"') });
    expect(codeAndMessage(() => resolveConfig({ data: { mean: [0, 0] } })).message).toContain('"data.mean"');
  });

  it('train.checkpointEvery is optional and, when set, a whole number of steps >= 1', () => {
    expect(resolveConfig({}).train.checkpointEvery).toBeUndefined();
    expect(resolveConfig({ train: { checkpointEvery: 40 } }).train.checkpointEvery).toBe(40);
    for (const [bad, why] of [
      [0, 'at least 1 step'],
      [-5, 'at least 1 step'],
      [2.5, 'whole number of steps'],
      ['10', 'expected number'],
    ] as const) {
      const e = codeAndMessage(() => resolveConfig({ train: { checkpointEvery: bad } }, 'run.json'));
      expect(e.code).toBe('SLFER_CONFIG_INVALID');
      expect(e.message).toContain('run.json: field "train.checkpointEvery"');
      expect(e.message).toContain(why);
    }
  });

  it('lets later layers override earlier ones field by field', () => {
    const c = resolveConfig(mergeConfig({ train: { epochs: 3, lr: 0.01 } }, { train: { epochs: 5, lr: undefined } }));
    expect(c.train.epochs).toBe(5);
    expect(c.train.lr).toBe(0.01);
  });

  it('accepts every shipped config file', () => {
    const dir = join(import.meta.dirname, '..', 'configs');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const f of files) expect(() => resolveConfig(readConfigFile(join(dir, f)), f)).not.toThrow();
  });

  it('names the file when it is not JSON or missing', () => {
    const missing = codeAndMessage(() => readConfigFile('/nonexistent/x.json'));
    expect(missing).toMatchObject({ code: 'SLFER_CONFIG_NOT_FOUND', message: expect.stringContaining('/nonexistent/x.json') });
    const bad = join(mkdtempSync(join(tmpdir(), 'slfer-config-')), 'broken.json');
    writeFileSync(bad, '{ "train": { "epochs": 3, } }');
    const e = codeAndMessage(() => readConfigFile(bad));
    expect(e.code).toBe('SLFER_CONFIG_INVALID');
    expect(e.message).toContain(bad);
    expect(e.message).toContain('is not valid JSON');
  });
});
