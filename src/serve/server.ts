import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { errors } from '../errors.js';
import { MODEL_JSON } from '../export/files.js';
import { SIDECAR } from '../export/export.js';
import { packageRoot } from '../util/package-root.js';

/** Content types by extension; anything else is served as bytes (and nosniff keeps browsers from guessing). */
const MIME: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.bin': 'application/octet-stream',
  // WebAssembly.instantiateStreaming refuses any other type.
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

export function mimeType(file: string): string {
  return MIME[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** The page's static files, read from the package root (src/serve/page ships in the package, beside dist/). */
export function pageDir(): string {
  return join(packageRoot(import.meta.url), 'src', 'serve', 'page');
}

/** tfjs's browser bundles from node_modules, by the names the page asks for: nothing else there is reachable. */
function vendorFiles(): Map<string, string> {
  const require = createRequire(import.meta.url);
  const tfjs = join(dirname(require.resolve('@tensorflow/tfjs/package.json')), 'dist');
  const wasm = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  const webgpu = join(dirname(require.resolve('@tensorflow/tfjs-backend-webgpu/package.json')), 'dist');
  return new Map([
    ['tf.min.js', join(tfjs, 'tf.min.js')],
    ['tf-backend-webgpu.min.js', join(webgpu, 'tf-backend-webgpu.min.js')],
    ['tf-backend-wasm.min.js', join(wasm, 'tf-backend-wasm.min.js')],
    ...['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'].map((f) => [f, join(wasm, f)] as [string, string]),
  ]);
}

/**
 * `rel` (a decoded URL path below a prefix) inside `root`, or undefined when it would leave it (`..`,
 * an absolute path, a NUL) or names no plain file. The check is on the resolved path, so encoded
 * separators (%2f) and dot segments the URL parser did not fold are caught too.
 */
export function fileInside(root: string, rel: string): string | undefined {
  if (rel.includes('\0')) return undefined;
  const base = resolve(root);
  const file = resolve(base, `.${sep}${rel}`);
  if (!file.startsWith(base + sep)) return undefined;
  try {
    // A symlink inside the folder must not lead out of it either.
    const real = realpathSync(file);
    return real.startsWith(realpathSync(base) + sep) && statSync(real).isFile() ? real : undefined;
  } catch {
    return undefined;
  }
}

export interface ServeOptions {
  /** An exported model folder (slfer-dist export). */
  model: string;
  /** 0: any free port. */
  port?: number;
  /** Default 127.0.0.1: the page needs no one else. */
  host?: string;
}

export interface RunningServer {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/**
 * Serves the demo page, tfjs's browser bundles and the exported model over node:http. The model
 * runs in the page; the server only hands out files (GET and HEAD, nothing else).
 */
export async function serve(o: ServeOptions): Promise<RunningServer> {
  const modelDir = resolve(o.model);
  for (const f of [MODEL_JSON, SIDECAR]) if (!existsSync(join(modelDir, f))) throw errors.webModelInvalid(modelDir, `${f} is missing`);
  const page = pageDir();
  const vendor = vendorFiles();
  const server = createServer((req, res) => handle(req, res, { page, vendor, modelDir }));
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(e.code === 'EADDRINUSE' ? errors.invalidArgument('--port', `port ${o.port} on ${host} is taken`, 'choose another --port, or --port 0 for any free one') : e),
    );
    server.listen(o.port ?? 0, host, () => ok());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  return {
    url,
    port,
    server,
    close: () => new Promise<void>((ok) => {
      server.close(() => ok());
      server.closeAllConnections();
    }),
  };
}

function handle(req: IncomingMessage, res: ServerResponse, where: { page: string; vendor: Map<string, string>; modelDir: string }): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
  let path: string;
  try {
    path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
  } catch {
    return reply(res, 400, 'bad request\n');
  }
  let file: string | undefined;
  if (path === '/') file = join(where.page, 'index.html');
  else if (path.startsWith('/vendor/')) file = where.vendor.get(path.slice('/vendor/'.length));
  else if (path.startsWith('/model/')) file = fileInside(where.modelDir, path.slice('/model/'.length));
  else file = fileInside(where.page, path.slice(1));
  if (!file) return reply(res, 404, 'not found\n');
  const body = readFileSync(file);
  res.writeHead(200, { ...COMMON_HEADERS, 'Content-Type': mimeType(file), 'Content-Length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Cross-origin isolation lets the page use SharedArrayBuffer, hence tfjs-wasm's multi-threaded
 * build; everything is same-origin, so nothing else is affected.
 */
const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-cache',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

function reply(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': 'text/plain; charset=utf-8', ...headers });
  res.end(text);
}
