import { parentPort, workerData } from 'node:worker_threads';
import { Dealer } from 'zeromq';
import { encode } from './protocol.js';
import { configureCurveClient } from './security/curve.js';
import type { RunKey } from './security/run-key.js';

/**
 * A worker's pulse, on a thread of its own: the main thread spends whole steps inside synchronous
 * engine calls, so a timer there would fall silent exactly when a slow step makes the coordinator
 * look. A hung process stops this thread too; a crashed one closes the socket. The socket's routing
 * id was registered with the rendezvous, which is how the coordinator knows whose beat this is.
 */
const { endpoint, rank, intervalMs, routingId, key } = workerData as { endpoint: string; rank: number; intervalMs: number; routingId: string; key?: RunKey };
const dealer = new Dealer({ linger: 0, sendTimeout: intervalMs, routingId });
// CURVE like the worker's other sockets; a client needs no ZAP handler of its own.
if (key) configureCurveClient(dealer, key);
dealer.connect(endpoint);
const beat = encode({ type: 'heartbeat', rank });
let sending = false;
const timer = setInterval(() => {
  if (sending) return;
  sending = true;
  dealer.send(beat).then(
    () => (sending = false),
    () => (sending = false),
  );
}, intervalMs);
parentPort?.on('message', (m) => {
  if (m === 'stop') {
    clearInterval(timer);
    dealer.close();
    parentPort?.close();
  }
});
