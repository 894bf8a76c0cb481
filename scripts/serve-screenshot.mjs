#!/usr/bin/env node
// A screenshot of `slfer-dist serve`'s page with an exported model and one face image, in headless
// Chromium (Debian's, through puppeteer-core), for the README. Needs the project built.
//   node scripts/serve-screenshot.mjs --model DIR --image FACE.png --out PAGE.png [--backend wasm]
import { existsSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import puppeteer from 'puppeteer-core';
import { serve } from '../dist/src/serve/server.js';

const { values: o } = parseArgs({ options: { model: { type: 'string' }, image: { type: 'string' }, out: { type: 'string' }, backend: { type: 'string', default: 'wasm' } } });
if (!o.model || !o.image || !o.out) {
  console.error('usage: node scripts/serve-screenshot.mjs --model DIR --image FACE.png --out PAGE.png [--backend wasm]');
  process.exit(2);
}
const chromium = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
if (!chromium) {
  console.error('no Chromium: apt-get install chromium, or set CHROMIUM_PATH');
  process.exit(1);
}
const server = await serve({ model: o.model, port: 0 });
const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 520 });
  await page.goto(`${server.url}?backend=${o.backend}`);
  await page.waitForSelector('body[data-ready="true"], body[data-error]', { timeout: 60_000 });
  await (await page.$('#file')).uploadFile(o.image);
  await page.waitForSelector('body[data-probabilities], body[data-error]', { timeout: 60_000 });
  const error = await page.evaluate('document.body.dataset.error');
  if (error) throw new Error(`the page says: ${error}`);
  writeFileSync(o.out, await page.screenshot({ fullPage: true }));
  console.log(`wrote ${o.out}: ${await page.evaluate('document.body.dataset.probabilities')}`);
} finally {
  await browser.close();
  await server.close();
}
