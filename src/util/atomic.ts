import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

/**
 * Writes a file so that readers see the old content or the new, never a torn one: write a temp file
 * beside it, fsync, rename over (atomic within one file system), fsync the folder.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  try {
    writeFileSync(tmp, data);
    fsyncPath(tmp);
    renameSync(tmp, path);
    fsyncPath(dirname(path));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Replaces folder `dest` by the complete folder `src` (same file system); `dest` need not exist. */
export function replaceDirAtomic(src: string, dest: string): void {
  fsyncPath(src);
  if (existsSync(dest)) {
    const old = `${dest}.old-${process.pid}-${Date.now()}`;
    renameSync(dest, old);
    renameSync(src, dest);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(src, dest);
  }
  fsyncPath(dirname(dest));
}

export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
