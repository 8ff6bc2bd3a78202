// The keep-alive HTTP client under the direct S3 GET and PUT (src/storage/http-client.ts), against a scripted TCP server: reuse, parsing, bodies sent, and every way an answer can go wrong.
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { KeepAliveHttpClient, type HttpOutcome } from '../../src/storage/http-client.js';

/** Script answers one request (its head as text) on a socket; it writes whatever it likes, or nothing. */
type Script = (socket: Socket, request: string, index: number) => void;

interface ScriptedServer {
  port: number;
  /** connections accepted so far. */
  connections: number;
  /** the most connections open at once. */
  peakOpen: number;
  requests: string[];
  /** the body of each request (empty without a Content-Length), in the same order. */
  bodies: Buffer[];
  close(): Promise<void>;
}

const servers: Server[] = [];
const clients: KeepAliveHttpClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** serve starts a server that hands each complete request (head and Content-Length body; in order, over all connections) to `script`. */
async function serve(script: Script): Promise<ScriptedServer> {
  const sockets = new Set<Socket>();
  const state: ScriptedServer = { port: 0, connections: 0, peakOpen: 0, requests: [], bodies: [], close: async () => {} };
  const server = createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    state.peakOpen = Math.max(state.peakOpen, sockets.size);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const request = pending.toString('latin1', 0, end);
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(request)?.[1] ?? 0);
        if (pending.length < end + 4 + length) return; // the body is still coming
        state.requests.push(request);
        state.bodies.push(pending.subarray(end + 4, end + 4 + length));
        pending = pending.subarray(end + 4 + length);
        script(socket, request, state.requests.length - 1);
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as { port: number }).port;
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}

function clientFor(server: ScriptedServer, options: { idleTimeoutMs?: number; maxSockets?: number } = {}): KeepAliveHttpClient {
  const client = new KeepAliveHttpClient('127.0.0.1', server.port, { idleTimeoutMs: options.idleTimeoutMs ?? 5_000, maxSockets: options.maxSockets ?? 16 });
  clients.push(client);
  return client;
}

function ok(body: Buffer | string, extra = ''): string {
  const bytes = Buffer.from(body);
  return `HTTP/1.1 200 OK\r\nContent-Length: ${bytes.length}\r\n${extra}\r\n${bytes.toString('latin1')}`;
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function answerOf(outcome: HttpOutcome) {
  if (outcome.kind !== 'answer') throw new Error(`expected an answer, got ${JSON.stringify(outcome)}`);
  return outcome;
}

const HEADERS = ['host', 'example:1', 'x-amz-date', '20240102T030405Z'];

describe('KeepAliveHttpClient', () => {
  it('sends the request head as given and reuses one connection for requests in turn', async () => {
    const server = await serve((socket, _request, i) => socket.write(ok(`answer ${i}`), 'latin1'));
    const client = clientFor(server);
    for (let i = 0; i < 5; i++) {
      const answer = answerOf(await client.get(`/bucket/key%20${i}`, HEADERS));
      expect(answer.status).toBe(200);
      expect((await readAll(answer.body!)).toString()).toBe(`answer ${i}`);
    }
    expect(server.connections).toBe(1);
    expect(server.requests[3]).toBe('GET /bucket/key%203 HTTP/1.1\r\nhost: example:1\r\nx-amz-date: 20240102T030405Z\r\nconnection: keep-alive');
  });

  it('reads heads and bodies that arrive in pieces, and gives headers as node:http does (lower case, repeats dropped or joined)', async () => {
    const body = randomBytes(300_000);
    const server = await serve((socket) => {
      const whole = Buffer.concat([
        Buffer.from(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nETag: "first"\r\nETag: "second"\r\nVary: Origin\r\nVary: Accept-Encoding\r\nX-Amz-Meta-Swm-Hash:  0123456789abcdef \r\n\r\n`),
        body,
      ]);
      // one byte, then odd-sized pieces with pauses, so the head itself is split
      const cuts = [1, 17, 40, 41, 200, 5000, 70_000, whole.length];
      let at = 0;
      const next = (i: number) => {
        if (i >= cuts.length) return;
        socket.write(whole.subarray(at, cuts[i]));
        at = cuts[i]!;
        setTimeout(() => next(i + 1), 5);
      };
      next(0);
    });
    const answer = answerOf(await clientFor(server).get('/k', HEADERS));
    expect(answer.status).toBe(206);
    expect(answer.headers).toEqual({ 'content-length': String(body.length), etag: '"first"', vary: 'Origin, Accept-Encoding', 'x-amz-meta-swm-hash': '0123456789abcdef' });
    expect((await readAll(answer.body!)).equals(body)).toBe(true);
  });

  it('reads an empty body and an 8 MiB body read slowly (the socket waits for the reader)', async () => {
    const big = randomBytes(8 * 1024 * 1024);
    const server = await serve((socket, _r, i) => socket.write(i === 0 ? ok('') : Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`), big])));
    const client = clientFor(server);
    expect((await readAll(answerOf(await client.get('/empty', HEADERS)).body!)).length).toBe(0);
    const answer = answerOf(await client.get('/big', HEADERS));
    const chunks: Buffer[] = [];
    for await (const chunk of answer.body!) {
      chunks.push(chunk as Buffer);
      if (chunks.length % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
    expect(server.connections).toBe(1);
  });

  it('answers other than 2xx come back without a body, and their connection is not used again', async () => {
    const server = await serve((socket, _r, i) => socket.write(i === 0 ? 'HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nNoSuchKey' : ok('fine')));
    const client = clientFor(server);
    const missing = answerOf(await client.get('/missing', HEADERS));
    expect(missing.status).toBe(404);
    expect(missing.body).toBeUndefined();
    expect((await readAll(answerOf(await client.get('/there', HEADERS)).body!)).toString()).toBe('fine');
    expect(server.connections).toBe(2);
  });

  it('reports what it does not read as unsupported: chunked bodies, no length, HTTP/1.0, interim answers', async () => {
    const answers = [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\n\r\nuntil close',
      'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi',
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi',
    ];
    const server = await serve((socket, _r, i) => socket.write(answers[i]!));
    const client = clientFor(server);
    for (let i = 0; i < answers.length; i++) expect((await client.get('/k', HEADERS)).kind).toBe('unsupported');
  });

  it('fails malformed answers: a bad status line, a broken header line, conflicting lengths, a head without end', async () => {
    const answers = [
      'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nhi',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n folded\r\n\r\nhi',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi',
      `HTTP/1.1 200 OK\r\nX-Long: ${'a'.repeat(70_000)}`,
    ];
    const server = await serve((socket, _r, i) => socket.write(answers[i]!));
    const client = clientFor(server);
    for (let i = 0; i < answers.length; i++) expect((await client.get('/k', HEADERS)).kind).toBe('failed');
  });

  it('fails a body cut short with an "aborted" ECONNRESET error, as node:http fails a response', async () => {
    const server = await serve((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly part of it');
      setTimeout(() => socket.destroy(), 20);
    });
    const answer = answerOf(await clientFor(server).get('/k', HEADERS));
    await expect(readAll(answer.body!)).rejects.toMatchObject({ message: 'aborted', code: 'ECONNRESET' });
  });

  it('sends a request again on a new connection when the kept-alive one closes without answering (the server closed it meanwhile)', async () => {
    const server = await serve((socket, _r, i) => {
      if (i === 1) socket.destroy(); // the server's keep-alive timeout struck as the request arrived
      else socket.write(ok(`answer ${i}`));
    });
    const client = clientFor(server);
    expect((await readAll(answerOf(await client.get('/a', HEADERS)).body!)).toString()).toBe('answer 0');
    expect((await readAll(answerOf(await client.get('/b', HEADERS)).body!)).toString()).toBe('answer 2');
    expect(server.connections).toBe(2);
    expect(server.requests.map((r) => r.split(' ')[1])).toEqual(['/a', '/b', '/b']);
  });

  it('does not send a request twice when the connection was new', async () => {
    const server = await serve((socket) => socket.destroy());
    const outcome = await clientFor(server).get('/k', HEADERS);
    expect(outcome.kind).toBe('failed');
    expect(server.requests.length).toBe(1);
  });

  it('gives up on a server that stays silent past the idle timeout: before the head (failed) and inside the body (aborted)', async () => {
    const server = await serve((socket, _r, i) => {
      if (i === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome');
    });
    const client = clientFor(server, { idleTimeoutMs: 200 });
    const silent = await client.get('/silent', HEADERS);
    expect(silent).toMatchObject({ kind: 'failed', error: { message: 'idle timeout' } });
    const answer = answerOf(await client.get('/stalls', HEADERS));
    await expect(readAll(answer.body!)).rejects.toMatchObject({ message: 'aborted' });
  });

  it('does not reuse a connection the answer asked to close, or whose answer ran past its length', async () => {
    const server = await serve((socket, _r, i) => socket.write(i === 0 ? ok('bye', 'Connection: close\r\n') : i === 1 ? `${ok('ab')}extra` : ok('fine')));
    const client = clientFor(server);
    for (const expected of ['bye', 'ab', 'fine']) expect((await readAll(answerOf(await client.get('/k', HEADERS)).body!)).toString()).toBe(expected);
    expect(server.connections).toBe(3);
  });

  it('opens at most maxSockets connections; the other requests wait for one', async () => {
    const server = await serve((socket, _r, i) => setTimeout(() => socket.write(ok(`answer ${i}`)), 20));
    const client = clientFor(server, { maxSockets: 2 });
    const bodies = await Promise.all(Array.from({ length: 7 }, async () => (await readAll(answerOf(await client.get('/k', HEADERS)).body!)).toString()));
    expect(bodies.sort()).toEqual(Array.from({ length: 7 }, (_, i) => `answer ${i}`).sort());
    expect(server.peakOpen).toBeLessThanOrEqual(2);
  });

  it('stops an exchange when its signal aborts, and a body its reader destroys takes its connection with it', async () => {
    const server = await serve((socket, _r, i) => {
      if (i === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nstart');
      if (i >= 2) socket.write(ok('after'));
    });
    const client = clientFor(server);
    const controller = new AbortController();
    const pending = client.get('/silent', HEADERS, controller.signal);
    setTimeout(() => controller.abort(new Error('stop')), 30);
    expect(await pending).toMatchObject({ kind: 'failed', error: { message: 'stop' } });
    const answer = answerOf(await client.get('/partial', HEADERS));
    answer.body!.destroy();
    expect((await readAll(answerOf(await client.get('/after', HEADERS)).body!)).toString()).toBe('after');
    expect(server.connections).toBe(3);
  });

  it('refuses a path or header holding a line break (no request is sent)', async () => {
    const server = await serve((socket) => socket.write(ok('x')));
    const client = clientFor(server);
    expect((await client.get('/k\r\nx-injected: 1', HEADERS)).kind).toBe('failed');
    expect((await client.get('/k', ['host', 'a\nb'])).kind).toBe('failed');
    expect(server.requests.length).toBe(0);
  });

  it('sends a PUT with its body after the head, in turn with GETs on one connection, and reads the empty answer', async () => {
    const server = await serve((socket, request, i) => socket.write(request.startsWith('PUT') ? 'HTTP/1.1 200 OK\r\nETag: "e"\r\nContent-Length: 0\r\n\r\n' : ok(`answer ${i}`)));
    const client = clientFor(server);
    const bodies = [randomBytes(4096), randomBytes(1 << 20), Buffer.alloc(0)];
    for (const body of bodies) {
      const answer = answerOf(await client.request('PUT', '/bucket/k', [...HEADERS, 'content-length', String(body.length)], body, { repeatable: true }));
      expect(answer.headers.etag).toBe('"e"');
      expect((await readAll(answer.body!)).length).toBe(0);
      expect((await readAll(answerOf(await client.get('/k', HEADERS)).body!)).toString()).toMatch(/^answer/);
    }
    expect(server.connections).toBe(1);
    expect(server.requests.filter((r) => r.startsWith('PUT /bucket/k HTTP/1.1\r\n')).length).toBe(3);
    // compared as hex: a deep equality over a 1 MiB Buffer takes seconds
    expect(server.bodies.filter((_, i) => server.requests[i]!.startsWith('PUT')).map((b) => b.toString('hex'))).toEqual(bodies.map((b) => b.toString('hex')));
  });

  it('sends a repeatable PUT again on a new connection when the kept-alive one was closed, but never one that is not', async () => {
    const server = await serve((socket, _r, i) => {
      if (i === 1 || i === 4) socket.destroy(); // closed by the server as the request arrived
      else socket.write(ok(''));
    });
    const client = clientFor(server);
    const put = (repeatable: boolean) => client.request('PUT', '/k', [...HEADERS, 'content-length', '3'], Buffer.from('abc'), { repeatable });
    expect((await put(true)).kind).toBe('answer');
    expect((await put(true)).kind).toBe('answer'); // requests 1 (closed) and 2 (repeated)
    expect((await put(false)).kind).toBe('answer'); // request 3, on the new connection
    expect((await put(false)).kind).toBe('failed'); // request 4 closed: not sent again
    expect(server.requests.length).toBe(5);
    expect(server.bodies.every((b) => b.toString() === 'abc')).toBe(true);
  });
});
