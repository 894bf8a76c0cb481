import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPRESSIONS } from '../../src/data/labels.js';
import { readRafDb } from '../../src/data/rafdb.js';
import { exportWebModel } from '../../src/export/export.js';
import { serve, type RunningServer } from '../../src/serve/server.js';
import { predict, type Prediction } from '../../src/train/evaluate.js';
import { train } from '../../src/train/trainer.js';
import { runCli } from '../helpers/cli.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

const SIDE = 40;
const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'slfer-dist.js');
let data: Awaited<ReturnType<typeof syntheticDataset>>;
let modelDir: string;
let face: string;
let expected: Prediction;
let server: RunningServer;

beforeAll(async () => {
  data = await syntheticDataset({ train: 24, test: 6, size: SIDE });
  const run = (await train({ config: tinyConfig(data.root, SIDE, { epochs: 1 }), out: join(data.base, 'run') })).runDir;
  modelDir = join(data.base, 'web');
  await exportWebModel({ checkpoint: run, out: modelDir, withSegmentation: true, backend: 'wasm' });
  // A PNG at the resize side: lossless, so the browser and sharp decode the same pixels, and the
  // resize is the identity in both (the browser cannot reproduce libvips's resampling exactly).
  face = join(data.base, 'face.png');
  await sharp(readRafDb(data.root).test[0].imagePath).resize(SIDE, SIDE, { fit: 'fill' }).png().toFile(face);
  [expected] = await predict({ checkpoint: run, images: [face], backend: 'wasm' });
  server = await serve({ model: modelDir, port: 0 });
}, 300_000);
afterAll(async () => {
  await server?.close();
  data?.cleanup();
});

/** A raw GET: the path goes on the wire as written (fetch would normalise dot segments first). */
function get(path: string, method = 'GET'): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode!, type: res.headers['content-type'], body: Buffer.concat(chunks).toString('latin1') }));
    });
    req.on('error', fail);
    req.end();
  });
}

describe('slfer-dist serve', () => {
  it('binds 127.0.0.1 on a free port and serves the page, tfjs bundles and the model with correct MIME types; a taken port is SLFER_INVALID_ARGUMENT', async () => {
    expect((server.server.address() as AddressInfo).address).toBe('127.0.0.1');
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
    const want: [string, string][] = [
      ['/', 'text/html; charset=utf-8'],
      ['/app.js', 'text/javascript; charset=utf-8'],
      ['/style.css', 'text/css; charset=utf-8'],
      ['/vendor/tf.min.js', 'text/javascript; charset=utf-8'],
      ['/vendor/tf-backend-wasm.min.js', 'text/javascript; charset=utf-8'],
      ['/vendor/tf-backend-webgpu.min.js', 'text/javascript; charset=utf-8'],
      ['/vendor/tfjs-backend-wasm-simd.wasm', 'application/wasm'],
      ['/model/model.json', 'application/json; charset=utf-8'],
      ['/model/slfer-model.json', 'application/json; charset=utf-8'],
      ['/model/group1-shard1of1.bin', 'application/octet-stream'],
    ];
    for (const [path, type] of want) {
      const r = await get(path);
      expect([path, r.status, r.type]).toEqual([path, 200, type]);
    }
    expect((await get('/')).body).toContain('<script type="module" src="/app.js">');
    expect((await get('/', 'POST')).status).toBe(405);
    const taken = await serve({ model: modelDir, port: server.port }).catch((e: unknown) => e);
    expect((taken as { code?: string }).code).toBe('SLFER_INVALID_ARGUMENT');
    expect(String(taken)).toContain(`port ${server.port}`);
  });

  it('refuses directory traversal: no file outside the page, the model folder and the named tfjs files', async () => {
    const attempts = [
      '/../package.json',
      '/model/../../package.json',
      '/model/..%2f..%2f..%2fpackage.json',
      '/model/%2e%2e/%2e%2e/package.json',
      '/..%2f..%2f..%2fpackage.json',
      '/%2e%2e%2f%2e%2e%2f%2e%2e%2fpackage.json',
      '/vendor/../../../package.json',
      '/vendor/..%2fpackage.json',
      '/vendor/tf.js',
      '/model/..%2frun%2fconfig.json',
      '/model/%2fetc%2fpasswd',
      '//etc/passwd',
      '/model/model.json%00.png',
      '/model/',
      '/%E0%A4%A',
    ];
    symlinkSync(join(ROOT, 'package.json'), join(modelDir, 'linked.json'));
    attempts.push('/model/linked.json');
    for (const path of attempts) {
      const r = await get(path);
      expect([path, r.status]).toEqual([path, expect.any(Number)]);
      expect([400, 404]).toContain(r.status);
      expect(r.body).not.toContain('"name": "slfer-dist"');
      expect(r.body).not.toContain('root:');
    }
  });

  it('the CLI prints the URL, serves until SIGTERM, and refuses a folder without an exported model', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--model', modelDir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await new Promise<string>((ok, fail) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (m) ok(m[1]);
      });
      child.on('exit', (code) => fail(new Error(`serve exited ${code}: ${out}`)));
    });
    expect((await fetch(url)).status).toBe(200);
    const exit = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    const bad = runCli(['serve', '--model', data.base]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('error SLFER_WEB_MODEL_INVALID');
  }, 60_000);

  it("in headless Chromium (wasm, and webgl where it starts), the page shows predict's probabilities for an uploaded image", async (ctx) => {
    const chromium = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
    if (!chromium) {
      if (process.env.SLFER_REQUIRE_BROWSER === '1') throw new Error('SLFER_REQUIRE_BROWSER=1 and no Chromium: apt-get install chromium (or set CHROMIUM_PATH)');
      ctx.skip('no Chromium (apt-get install chromium, or set CHROMIUM_PATH)');
      return;
    }
    const puppeteer = await import('puppeteer-core').catch(() => undefined);
    if (!puppeteer) {
      if (process.env.SLFER_REQUIRE_BROWSER === '1') throw new Error('SLFER_REQUIRE_BROWSER=1 and puppeteer-core is not installed');
      ctx.skip('puppeteer-core is not installed');
      return;
    }
    // Root needs --no-sandbox.
    const browser = await puppeteer.default.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    try {
      // wasm first (float32 in any Chromium; XNNPACK in the page against predict's wasm engine in
      // Node, oneDNN where built: the same network summed in another order), then webgl where this
      // Chromium starts it (it does here, with no GPU: Chromium's software WebGL).
      for (const backend of ['wasm', 'webgl'] as const) {
        const page = await browser.newPage();
        const logs: string[] = [];
        page.on('console', (m) => logs.push(m.text()));
        page.on('pageerror', (e) => logs.push(String(e)));
        await page.setViewport({ width: 900, height: 520 });
        await page.goto(`${server.url}?backend=${backend}`);
        await page.waitForSelector('body[data-ready="true"], body[data-error]', { timeout: 30_000 });
        expect(await page.evaluate('document.body.dataset.error'), logs.join('\n')).toBeUndefined();
        const running = await page.evaluate('document.body.dataset.backend');
        if (backend === 'webgl' && running !== 'webgl') {
          ctx.annotate(`webgl did not start in this Chromium (the page runs ${String(running)}): checked on wasm only`);
          break;
        }
        expect(running).toBe(backend);
        const input = await page.$('#file');
        await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(face);
        await page.waitForSelector('body[data-probabilities], body[data-error]', { timeout: 30_000 });
        expect(await page.evaluate('document.body.dataset.error'), logs.join('\n')).toBeUndefined();
        const shown = JSON.parse((await page.evaluate('document.body.dataset.probabilities')) as string) as Record<string, number>;
        expect(Object.keys(shown)).toEqual([...EXPRESSIONS]);
        const worst = Math.max(...EXPRESSIONS.map((e) => Math.abs(shown[e] - expected.probabilities[e])));
        expect([backend, worst]).toEqual([backend, expect.any(Number)]);
        expect(worst).toBeLessThan(1e-5);
        // The bars show the same numbers, one per class, and the mask was drawn. (Strings, evaluated
        // in the page: these tests compile without the DOM's types.)
        const bars = JSON.parse((await page.evaluate(`JSON.stringify([...document.querySelectorAll('.bar')].map((r) => [r.dataset.class, r.querySelector('.value').textContent]))`)) as string);
        expect(bars).toEqual(EXPRESSIONS.map((e) => [e, `${(expected.probabilities[e] * 100).toFixed(1)}%`]));
        expect(await page.evaluate(`document.getElementById('mask-figure').hidden`)).toBe(false);
        mkdirSync(join(ROOT, 'test-results'), { recursive: true });
        writeFileSync(join(ROOT, 'test-results', `serve-page-${backend}.png`), await page.screenshot({ fullPage: true }));
        await page.close();
      }
    } finally {
      await browser.close();
    }
  }, 120_000);
});
