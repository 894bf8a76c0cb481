/**
 * Tiny real datasets on disk for parse's tests: synthetic faces (src/data/synth) in RAF-DB's layout
 * without their masks, and the same images rearranged into SFEW 2.0's layout.
 */
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticDataset } from '../helpers/synthetic.js';

/** RAF-DB layout, Mask/ removed, so parse has every mask to make. */
export async function rafdbWithoutMasks(train: number, test: number, size: number) {
  const d = await syntheticDataset({ train, test, size });
  rmSync(join(d.root, 'Mask'), { recursive: true, force: true });
  return d;
}

/** SFEW layout from a RAF-DB-layout folder: train images under Train_Aligned_Faces/<Class>/, test under Val_. */
export function sfewFrom(rafdbRoot: string, out: string, classes = ['Happy', 'Sad']): string[] {
  const images = readdirSync(join(rafdbRoot, 'Image', 'aligned')).sort();
  const written: string[] = [];
  images.forEach((name, i) => {
    const split = name.startsWith('train_') ? 'Train' : 'Val';
    const dir = join(out, `${split}_Aligned_Faces`, classes[i % classes.length]);
    mkdirSync(dir, { recursive: true });
    const to = join(dir, name);
    copyFileSync(join(rafdbRoot, 'Image', 'aligned', name), to);
    written.push(to);
  });
  return written;
}
