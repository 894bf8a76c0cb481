import sharp from 'sharp';
import type { EvalResult } from './metrics.js';

/**
 * The confusion matrix as a picture: rows are true expressions, columns predictions, each cell
 * shaded by the fraction of its row and labelled with the count. SVG (text stays crisp) and PNG
 * (rendered from the same SVG by sharp/librsvg) for viewers that do not open SVG.
 */
export function confusionMatrixSvg(r: EvalResult, title: string): string {
  const k = r.classNames.length;
  const cell = 64;
  const left = 110;
  const top = 70;
  const w = left + k * cell + 20;
  const h = top + k * cell + 60;
  const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${w}" height="${h}" fill="#ffffff"/>`,
    `<text x="${w / 2}" y="24" font-size="15" text-anchor="middle">${esc(title)}</text>`,
    `<text x="${left + (k * cell) / 2}" y="${h - 12}" font-size="13" text-anchor="middle">predicted</text>`,
    `<text x="14" y="${top + (k * cell) / 2}" font-size="13" text-anchor="middle" transform="rotate(-90 14 ${top + (k * cell) / 2})">true</text>`,
  ];
  r.confusionMatrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    parts.push(`<text x="${left - 8}" y="${top + i * cell + cell / 2 + 4}" font-size="12" text-anchor="end">${esc(r.classNames[i])}</text>`);
    row.forEach((n, j) => {
      const f = n / total;
      const shade = Math.round(255 - 200 * f);
      const fill = `rgb(${shade},${Math.round(255 - 120 * f)},255)`;
      const x = left + j * cell;
      const y = top + i * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}" stroke="#999"/>`);
      parts.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 5}" font-size="14" text-anchor="middle" fill="${f > 0.6 ? '#fff' : '#000'}">${n}</text>`);
    });
  });
  r.classNames.forEach((name, j) => {
    const x = left + j * cell + cell / 2;
    parts.push(`<text x="${x}" y="${top - 8}" font-size="11" text-anchor="middle">${esc(name.slice(0, 9))}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export async function confusionMatrixPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}
