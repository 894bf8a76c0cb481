/** Commander argument parsers shared by every command: a bad value is refused naming its flag. */
import { InvalidArgumentError } from 'commander';

/** `min`: refuse smaller values here, naming the flag (otherwise the config check names its field). */
export const int = (name: string, o: { min?: number } = {}) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
  if (o.min !== undefined && n < o.min) throw new InvalidArgumentError(`${name} must be at least ${o.min}`);
  return n;
};

export const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};

/** A comma-separated list of numbers (`0,0.5,1`); an empty entry or a non-number is refused. */
export const numList = (name: string) => (v: string) =>
  v.split(',').map((s) => {
    const n = s.trim() === '' ? NaN : Number(s);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be comma-separated numbers, got "${v}"`);
    return n;
  });
