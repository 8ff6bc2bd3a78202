// Test helper: a loopback TCP port nobody listens on (free for a server to take, or closed for a client to fail against).
import { createServer } from 'node:net';

/** freeLoopbackPort asks the kernel for a free port on 127.0.0.1 and releases it at once. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}
