import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/** Whether a process with this id still exists (signal 0 checks without signalling). */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The ids of a process's children (pgrep -P). */
export const childrenOf = (pid: number): number[] =>
  spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean)
    .map(Number);

export interface Started {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved as they came. */
  text(): string;
  exited: Promise<number | null>;
}

/** Starts a command with its output collected (colours off). */
export function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Started {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0', ...env } });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  return { child, text: () => text, exited: new Promise((r) => child.on('exit', (code) => r(code))) };
}
