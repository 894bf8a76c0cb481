import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { errors } from '../src/errors.js';

export const isLoopback = (addr: string): boolean => addr === 'localhost' || addr === '::1' || /^127\./.test(addr);

/**
 * The address this machine's peers reach it at: SLFER_ADVERTISE_ADDR when set, else the local
 * address of the route towards rank 0's host (a connected UDP socket sends nothing; the kernel just
 * picks the interface). The hostname is no answer: on many clusters it resolves to 127.0.1.1.
 * A world that spans machines never advertises loopback.
 */
export async function advertiseAddress(towards: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const given = env.SLFER_ADVERTISE_ADDR;
  if (given) {
    if (isLoopback(given)) throw errors.invalidArgument('SLFER_ADVERTISE_ADDR', `is ${given}, a loopback address, in a world that spans machines`, "set it to this machine's address on the network the other nodes share, or unset it");
    return given;
  }
  let target = towards;
  if (!isIP(target)) {
    try {
      target = (await lookup(towards)).address;
    } catch (e) {
      throw errors.clusterTransport('resolve rank 0\'s host', towards, e);
    }
  }
  const local = await new Promise<string>((resolve, reject) => {
    const sock = createSocket(isIP(target) === 6 ? 'udp6' : 'udp4');
    sock.on('error', (e) => {
      sock.close();
      reject(e);
    });
    sock.connect(9, target, () => {
      const { address } = sock.address();
      sock.close();
      resolve(address);
    });
  }).catch((e: unknown) => {
    throw errors.clusterTransport('find a route to rank 0\'s host', target, e);
  });
  if (isLoopback(local)) {
    throw errors.invalidArgument(
      'advertised address',
      `the route to rank 0's host ${towards} (${target}) leaves through loopback, so peers on other machines could not reach this one`,
      "give rank 0's address as other machines see it (--rdzv-endpoint, MASTER_ADDR), or set SLFER_ADVERTISE_ADDR",
    );
  }
  return local;
}
