/**
 * A 7x12 bitmap font (rasterised once from DejaVu Sans Mono at 11px): each glyph is 12 rows, one hex
 * byte per row, bit 6 the leftmost pixel. Built in, so pictures look the same on a machine with no
 * fonts installed. Lower case, digits and a little punctuation: what labels and figures need.
 */
const GLYPHS: Readonly<Record<string, string>> = {
  'a': '000000003c063e22263e0000', 'b': '002020203c362222363c0000', 'c': '000000001e302020301e0000',
  'd': '000202021e262626261e0000', 'e': '000000001c223e20201e0000', 'f': '000e08083e08080808080000',
  'g': '000000001e262626261e043c', 'h': '002020203c36222222220000', 'i': '0008000038080808083e0000',
  'j': '000800003808080808080838', 'k': '00202020262c383c24220000', 'l': '0038181818181818180e0000',
  'm': '000000003e2a2a2a2a2a0000', 'n': '000000003c36222222220000', 'o': '000000001c262222261c0000',
  'p': '000000003c362222363c2020', 'q': '000000001e262222261e0202', 'r': '000000001e18101010100000',
  's': '000000001c20380c063c0000', 't': '000010103e101010180e0000', 'u': '0000000022222222261e0000',
  'v': '00000000222624141c180000', 'w': '0000000043422a3a36340000', 'x': '000000002614181834220000',
  'y': '000000002222141418081830', 'z': '000000003e040810103e0000', '0': '00001c3622222a22361c0000',
  '1': '0000380808080808083e0000', '2': '00003c2606040818303e0000', '3': '00001c26061c0602263c0000',
  '4': '00000c0c1424247e04040000', '5': '00003c20203c0602063c0000', '6': '00001c30203c2622261c0000',
  '7': '00003e040404080818100000', '8': '00001c26261c2622261c0000', '9': '00001c2622261e02043c0000',
  '-': '0000000000001c0000000000', ':': '000000000808000008080000', '/': '000006040408081010202000',
  '(': '000408081810101808080400', ')': '001008080808080808181000', '.': '000000000000000008080000',
  '%': '000030483204102e0a0e0000',
}; // prettier-ignore

export const GLYPH_W = 7;
export const GLYPH_H = 12;

/** The glyph's 12 rows as bit masks (0x40 the leftmost pixel); undefined for a space or a character the font lacks. */
export function glyphRows(ch: string): number[] | undefined {
  const g = GLYPHS[ch.toLowerCase()];
  return g === undefined ? undefined : Array.from({ length: GLYPH_H }, (_, row) => parseInt(g.slice(row * 2, row * 2 + 2), 16));
}

/** Width in pixels of a line of text (every character advances one glyph, drawn or not). */
export const textWidth = (s: string): number => [...s].length * GLYPH_W;
