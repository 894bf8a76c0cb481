/**
 * Which ranks are alive, by their heartbeats (a thread of each worker sends one a second; any
 * control message counts too). Ranks on other machines have no process here to watch, so this is
 * how a coordinator notices a hung or vanished one. If this process's own event loop was blocked
 * (rank 0's in-process worker inside a long engine call), no beat could have been read meanwhile:
 * the clock restarts instead of blaming the ranks.
 */
export class Liveness {
  private readonly lastBeat: number[];
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;

  constructor(
    worldSize: number,
    private readonly limitMs: number,
    private readonly onSilent: (rank: number, seconds: number) => void,
    private readonly tickMs = 250,
  ) {
    this.lastBeat = new Array<number>(worldSize).fill(Date.now());
  }

  start(): void {
    this.reset();
    this.timer = setInterval(() => this.check(), this.tickMs);
  }

  /** Silence is counted from now (e.g. once every rank is ready). */
  reset(): void {
    const now = Date.now();
    this.lastBeat.fill(now);
    this.lastTick = now;
  }

  beat(rank: number): void {
    if (rank >= 0 && rank < this.lastBeat.length) this.lastBeat[rank] = Date.now();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    const now = Date.now();
    const stalled = now - this.lastTick > Math.max(this.limitMs / 2, 4 * this.tickMs);
    this.lastTick = now;
    if (stalled) {
      this.lastBeat.fill(now);
      return;
    }
    this.lastBeat.forEach((t, rank) => {
      if (now - t > this.limitMs) this.onSilent(rank, (now - t) / 1000);
    });
  }
}
