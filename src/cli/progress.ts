import type { TrainEvents } from '../train/trainer.js';

/**
 * Training progress for a terminal: on a TTY one redrawn bar per epoch with loss, img/s and ETA;
 * on a pipe (CI, `| tee`) plain lines at every tenth of an epoch, so logs stay readable.
 */
export function progressReporter(stream: NodeJS.WriteStream = process.stderr): TrainEvents {
  const tty = stream.isTTY === true;
  let lastPlain = -1;
  let barShown = false;
  const clearBar = () => {
    if (barShown) stream.write('\r\x1b[2K');
    barShown = false;
  };
  return {
    log(line) {
      clearBar();
      stream.write(`${line}\n`);
    },
    epochStart({ epoch, epochs, steps, lr }) {
      clearBar();
      lastPlain = -1;
      stream.write(`epoch ${epoch}/${epochs}: ${steps} steps, lr ${lr.toExponential(2)}\n`);
    },
    step({ epoch, step, steps, loss, images, seconds }) {
      const rate = images / Math.max(seconds, 1e-9);
      const eta = steps > step ? ((steps - step) * seconds) / step : 0;
      const stats = `loss ${loss.toFixed(4)}  ${rate.toFixed(1)} img/s  ETA ${clock(eta)}`;
      if (tty) {
        const width = 24;
        const filled = Math.round((width * step) / Math.max(steps, 1));
        stream.write(`\r\x1b[2K  [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${step}/${steps}  ${stats}`);
        barShown = true;
      } else {
        const tenth = Math.floor((10 * step) / Math.max(steps, 1));
        if (tenth !== lastPlain && (tenth > 0 || step === 1)) {
          lastPlain = tenth;
          stream.write(`  epoch ${epoch} step ${step}/${steps}  ${stats}\n`);
        }
      }
    },
    epochEnd(m) {
      clearBar();
      const parts = Object.entries(m.trainLossParts)
        .map(([k, v]) => `${k} ${Number(v).toFixed(3)}`)
        .join(', ');
      stream.write(
        `epoch ${m.epoch} done: train loss ${m.trainLoss.toFixed(4)} (${parts}), test accuracy ${(m.testAccuracy * 100).toFixed(2)}%, ` +
          `${m.imagesPerSec.toFixed(1)} img/s, data wait ${m.dataWaitSeconds.toFixed(1)} s, ${m.epochSeconds.toFixed(0)} s\n`,
      );
    },
  };
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * Progress over a count of items (parse's images), the same way: a redrawn bar with img/s and ETA
 * on a TTY, a plain line at every tenth on a pipe. `note` is appended (e.g. counts so far).
 */
export function countProgress(stream: NodeJS.WriteStream = process.stderr, unit = 'img') {
  const tty = stream.isTTY === true;
  let lastPlain = -1;
  let barShown = false;
  return {
    update(done: number, total: number, seconds: number, note = ''): void {
      const rate = done / Math.max(seconds, 1e-9);
      const eta = total > done && done > 0 ? ((total - done) * seconds) / done : 0;
      const stats = `${rate.toFixed(2)} ${unit}/s  ETA ${clock(eta)}${note ? `  ${note}` : ''}`;
      if (tty) {
        const width = 24;
        const filled = Math.round((width * done) / Math.max(total, 1));
        stream.write(`\r\x1b[2K  [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}  ${stats}`);
        barShown = true;
        return;
      }
      const tenth = Math.floor((10 * done) / Math.max(total, 1));
      if (tenth !== lastPlain && (tenth > 0 || done === 1)) {
        lastPlain = tenth;
        stream.write(`  ${done}/${total}  ${stats}\n`);
      }
    },
    /** Clears the bar so the next line starts clean. */
    end(): void {
      if (barShown) stream.write('\r\x1b[2K');
      barShown = false;
    },
  };
}
