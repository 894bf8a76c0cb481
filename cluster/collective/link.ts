import type { Dealer } from 'zeromq';

/**
 * Sends on one ZeroMQ socket in order, one send at a time: zeromq.js allows a single pending
 * send per socket (a second one throws EBUSY), and collectives want to queue many chunks at once.
 * A message's buffers are handed to ZeroMQ without copying; the ring protocol (an acknowledgement
 * at the end of every collective) is what makes it safe to write to them again.
 */
export class Outbox {
  private readonly queue: Array<ArrayBufferView[]> = [];
  private sending = false;
  private error: unknown = undefined;
  private idleWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];

  constructor(
    private readonly socket: Dealer,
    private readonly onError: (e: unknown) => void,
  ) {}

  push(parts: ArrayBufferView[]): void {
    if (this.error !== undefined) return;
    if (this.sending) this.queue.push(parts);
    else this.start(parts);
  }

  /** Resolves once everything pushed so far has been queued in ZeroMQ; rejects on a failed send. */
  drained(): Promise<void> {
    if (this.error !== undefined) return Promise.reject(this.error);
    if (!this.sending) return Promise.resolve();
    return new Promise((resolve, reject) => this.idleWaiters.push({ resolve, reject }));
  }

  private start(parts: ArrayBufferView[]): void {
    this.sending = true;
    let sent: Promise<void>;
    try {
      sent = this.socket.send(parts);
    } catch (e) {
      sent = Promise.reject(e);
    }
    sent.then(
      () => {
        const next = this.queue.shift();
        if (next) return this.start(next);
        this.sending = false;
        for (const w of this.idleWaiters.splice(0)) w.resolve();
      },
      (e: unknown) => {
        this.error = e;
        this.sending = false;
        this.queue.length = 0;
        for (const w of this.idleWaiters.splice(0)) w.reject(e);
        this.onError(e);
      },
    );
  }
}

/**
 * Fails every operation it watches, at once, when tripped. Not Promise.race against one
 * long-lived promise: each race would leave a reaction on it holding that operation's result,
 * so every received buffer of a collective would stay reachable until the collective ends.
 */
export class Tripwire {
  private error: { e: unknown } | undefined;
  private readonly watching = new Set<(e: unknown) => void>();

  /** The error it was tripped with, or undefined. */
  get tripped(): unknown {
    return this.error?.e;
  }

  trip(e: unknown): void {
    if (this.error) return;
    this.error = { e };
    for (const reject of this.watching) reject(e);
    this.watching.clear();
  }

  watch<T>(op: Promise<T>): Promise<T> {
    if (this.error) {
      op.catch(() => {});
      return Promise.reject(this.error.e);
    }
    return new Promise<T>((resolve, reject) => {
      this.watching.add(reject);
      op.then(
        (v) => {
          this.watching.delete(reject);
          resolve(v);
        },
        (e: unknown) => {
          this.watching.delete(reject);
          reject(e);
        },
      );
    });
  }
}
