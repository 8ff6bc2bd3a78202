// A minimal HTTP/1.1 client for GETs and small PUTs on keep-alive sockets (plain http only), under s3-direct.ts: less than half of node:http's CPU per request.
//
// Why: on loopback a 4 KiB GET through node:http costs ~200–290 µs of client CPU (ClientRequest, the agent's
// bookkeeping, the parser's and the response stream's events); the same exchange on a bare net.Socket ~90–120 µs, and
// a pull (or a push) of many small files is one request per file on a main thread that also reads or writes the files.
//
// What it reads: a status line, headers, and a body of Content-Length bytes. Anything else it does not read (chunked
// or no length, a 1xx, HTTP/1.0) is reported as `unsupported` and the caller goes back to node:http. Errors are
// reported, never retried here — except a request on a kept-alive socket that the server had already closed, which is
// sent once more on a new connection when the caller says it may be repeated (a GET, a PUT without conditions).
// Answers other than 2xx come back without their body (the connection is dropped). A body that breaks off, stalls past
// the idle timeout or is aborted fails its stream with an "aborted" ECONNRESET error, as node:http's response does.
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { IncomingHttpHeaders } from 'node:http';

/** HttpOutcome: an answer (2xx: with its body stream, to be read), a failure (no answer; the caller falls back), or a server this client cannot read. */
export type HttpOutcome =
  | { kind: 'answer'; status: number; headers: IncomingHttpHeaders; body: Readable | undefined }
  | { kind: 'failed'; error: Error }
  | { kind: 'unsupported'; reason: string };

/** LINE_BREAK in a header or the path would end the request head early (and let a value inject headers). */
const LINE_BREAK = /[\r\n]/;

/** MAX_HEAD_BYTES bounds a response head; a longer one is refused as malformed (node:http's limit is 16 KiB). */
const MAX_HEAD_BYTES = 64 * 1024;

/** SINGLE_HEADERS: names whose repeats node:http drops (the first one counts); other repeated headers are joined with ", ". */
const SINGLE_HEADERS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

/** KeepAliveHttpClient sends GETs and PUTs to one host:port, at most maxSockets at once, reusing idle connections (last used first). */
export class KeepAliveHttpClient {
  private readonly idle: Connection[] = [];
  private readonly waiting: (() => void)[] = [];
  private open = 0;
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly options: { idleTimeoutMs: number; maxSockets: number },
  ) {}

  /**
   * request sends `method path` with the given headers ([name, value, name, value, …]; Host among them; Content-Length
   * too when there is a body) and the body, and resolves when the answer's head has arrived. A 2xx answer's body must be
   * read or destroyed. `repeatable`: the request may go once more on a new connection when a kept-alive one turns out
   * closed before any answer (false for a PUT whose repeat could answer differently, e.g. one with If-None-Match).
   */
  async request(
    method: 'GET' | 'PUT', path: string, headers: string[], body: Buffer | undefined, options: { signal?: AbortSignal; repeatable: boolean },
  ): Promise<HttpOutcome> {
    const { signal } = options;
    if (LINE_BREAK.test(path)) return { kind: 'failed', error: new Error('the path holds a line break') };
    let head = `${method} ${path} HTTP/1.1\r\n`;
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (LINE_BREAK.test(headers[i]!) || LINE_BREAK.test(headers[i + 1]!)) return { kind: 'failed', error: new Error('a header holds a line break') };
      head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    head += 'connection: keep-alive\r\n\r\n';
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      const connection = await this.acquire(attempt > 1);
      if (!connection) return { kind: 'failed', error: new Error('client closed') };
      const outcome = await connection.exchange(head, body, signal);
      // a kept-alive connection the server had closed meanwhile: nothing was answered, so the request may go once more
      if (outcome.kind === 'failed' && outcome.stale && attempt === 1 && options.repeatable) continue;
      return outcome;
    }
  }

  /** get sends `GET path` (request() for a GET, which may always be repeated). */
  get(path: string, headers: string[], signal?: AbortSignal): Promise<HttpOutcome> {
    return this.request('GET', path, headers, undefined, { signal, repeatable: true });
  }

  /** close drops the idle connections and those that finish from now on; requests in flight end on their own. */
  close(): void {
    this.closed = true;
    for (const connection of this.idle.splice(0)) connection.socket.destroy();
    for (const wake of this.waiting.splice(0)) wake();
  }

  /**
   * acquire takes an idle connection or opens one (a `fresh` one for a repeat, even past maxSockets: the idle ones may
   * be as stale as the last); when maxSockets are busy it waits for one. undefined once the client is closed.
   */
  private async acquire(fresh: boolean): Promise<Connection | undefined> {
    for (;;) {
      if (this.closed) return undefined;
      while (!fresh && this.idle.length > 0) {
        const connection = this.idle.pop()!;
        if (connection.socket.destroyed) continue;
        connection.socket.ref();
        return connection;
      }
      if (fresh || this.open < this.options.maxSockets) {
        this.open++;
        return new Connection(connect({ host: this.host, port: this.port, noDelay: true, keepAlive: true }), this.options.idleTimeoutMs, this);
      }
      await new Promise<void>((wake) => this.waiting.push(wake));
    }
  }

  /** release takes back a connection whose exchange ended cleanly: to a waiting request, or to the idle list. */
  release(connection: Connection): void {
    if (this.closed) {
      connection.socket.destroy();
      return;
    }
    connection.socket.unref(); // an idle connection does not keep the process alive
    this.idle.push(connection);
    this.waiting.shift()?.();
  }

  /** closedConnection forgets a connection whose socket closed. */
  closedConnection(connection: Connection): void {
    this.open--;
    const at = this.idle.indexOf(connection);
    if (at >= 0) this.idle.splice(at, 1);
    this.waiting.shift()?.();
  }
}

/** Exchange is one request on a connection: waiting for its head, then feeding its body. */
interface Exchange {
  settle: (outcome: HttpOutcome & { stale?: boolean }) => void;
  settled: boolean;
  /** bytes of the head received so far (it may come in several chunks). */
  head: Buffer | undefined;
  body: ResponseBody | undefined;
  /** body bytes still to come. */
  remaining: number;
  /** whether the connection may serve another request after this one (HTTP/1.1 without "connection: close"). */
  reusable: boolean;
  /** whether any byte of the answer arrived (a reused connection that closes before that was stale). */
  answered: boolean;
  abortReason?: unknown;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** Connection is one keep-alive socket and the exchange it is serving, if any. */
class Connection {
  private current: Exchange | undefined;
  private served = 0;
  private error: Error | undefined;

  constructor(
    readonly socket: Socket,
    idleTimeoutMs: number,
    private readonly client: KeepAliveHttpClient,
  ) {
    socket.setTimeout(idleTimeoutMs); // idle while waiting for an answer: fail it; idle in the pool: close it
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => socket.destroy(new Error('idle timeout')));
    socket.on('error', (e) => {
      this.error = e;
    });
    socket.on('close', () => this.onClose());
  }

  exchange(head: string, body: Buffer | undefined, signal: AbortSignal | undefined): Promise<HttpOutcome & { stale?: boolean }> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) {
        // closed since it was taken from the idle list: fail now, its 'close' may have gone by already
        resolve({ kind: 'failed', error: new Error('connection closed'), stale: this.served > 0 });
        return;
      }
      const exchange: Exchange = { settle: resolve, settled: false, head: undefined, body: undefined, remaining: 0, reusable: false, answered: false };
      this.current = exchange;
      if (signal) {
        exchange.signal = signal;
        exchange.onAbort = () => {
          exchange.abortReason = signal.reason;
          this.socket.destroy();
        };
        signal.addEventListener('abort', exchange.onAbort, { once: true });
        if (signal.aborted) {
          exchange.onAbort(); // aborted while the connection was being found: its close settles the exchange
          return;
        }
      }
      if (body === undefined || body.length === 0) {
        this.socket.write(head, 'latin1');
        return;
      }
      // head and body in one writev
      this.socket.cork();
      this.socket.write(head, 'latin1');
      this.socket.write(body);
      this.socket.uncork();
    });
  }

  private onData(chunk: Buffer): void {
    const exchange = this.current;
    if (!exchange) {
      this.socket.destroy(); // bytes nobody asked for: the connection is out of step
      return;
    }
    exchange.answered = true;
    if (!exchange.settled) {
      const buffered = exchange.head ? Buffer.concat([exchange.head, chunk]) : chunk;
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buffered.length > MAX_HEAD_BYTES) this.fail(exchange, new Error('response head too large'));
        else exchange.head = buffered;
        return;
      }
      exchange.head = undefined;
      if (!this.onHead(exchange, buffered.toString('latin1', 0, end))) return;
      if (end + 4 < buffered.length) this.onBody(exchange, buffered.subarray(end + 4));
      else if (exchange.remaining === 0) this.finish(exchange);
      return;
    }
    this.onBody(exchange, chunk);
  }

  /** onHead reads the status line and headers; false when the exchange ended there (anything but a readable 2xx). */
  private onHead(exchange: Exchange, text: string): boolean {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: |$)/.exec(lines[0]!);
    if (!status) return this.fail(exchange, new Error(`malformed status line ${JSON.stringify(lines[0]!.slice(0, 100))}`));
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0 || line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9) return this.fail(exchange, new Error('malformed header line'));
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      const previous = headers[name];
      if (previous === undefined) headers[name] = value;
      else if (name === 'content-length' && previous !== value) return this.fail(exchange, new Error('conflicting content-length headers'));
      else if (!SINGLE_HEADERS.has(name)) headers[name] = `${previous}, ${value}`;
    }
    const code = Number(status[2]);
    if (status[1] !== '1' || code < 200) return this.unsupported(exchange, status[1] !== '1' ? 'HTTP/1.0 answer' : `${code} interim answer`);
    if (code >= 300) {
      // the body of an error answer is not read here: the caller repeats the request through the SDK, which reads it
      this.settle(exchange, { kind: 'answer', status: code, headers, body: undefined });
      this.detach(exchange);
      this.socket.destroy();
      return false;
    }
    if (headers['transfer-encoding'] !== undefined) return this.unsupported(exchange, `transfer-encoding ${headers['transfer-encoding']}`);
    const length = headers['content-length'];
    if (length === undefined || !/^\d{1,15}$/.test(length)) return this.unsupported(exchange, 'no content-length');
    exchange.remaining = Number(length);
    exchange.reusable = !/(^|,)\s*close\s*(,|$)/i.test(headers.connection ?? '');
    exchange.body = new ResponseBody(this, exchange);
    this.settle(exchange, { kind: 'answer', status: code, headers, body: exchange.body });
    return true;
  }

  private onBody(exchange: Exchange, chunk: Buffer): void {
    const body = exchange.body!;
    if (chunk.length > exchange.remaining) {
      // more bytes than announced: the answer is out of step with its length, the connection is not used again
      exchange.reusable = false;
      chunk = chunk.subarray(0, exchange.remaining);
    }
    exchange.remaining -= chunk.length;
    const more = chunk.length === 0 || body.push(chunk);
    if (exchange.remaining === 0) this.finish(exchange);
    else if (!more) this.socket.pause(); // the reader is behind: ResponseBody._read resumes
  }

  /** finish ends a body that arrived whole and hands the connection back (or closes it). */
  private finish(exchange: Exchange): void {
    this.detach(exchange);
    exchange.body?.push(null);
    this.served++;
    if (exchange.reusable && !this.socket.destroyed) {
      this.socket.resume();
      this.client.release(this);
    } else this.socket.destroy();
  }

  /** resumeFor resumes reading for a body that its reader wants more of, if that body is still this connection's. */
  resumeFor(exchange: Exchange): void {
    if (this.current === exchange) this.socket.resume();
  }

  /** abandon: a body destroyed by its reader before its end; the rest of it cannot be skipped reliably, so the socket goes. */
  abandon(exchange: Exchange): void {
    if (this.current === exchange) {
      this.detach(exchange);
      this.socket.destroy();
    }
  }

  private onClose(): void {
    const exchange = this.current;
    this.client.closedConnection(this);
    if (!exchange) return;
    this.detach(exchange);
    if (!exchange.settled) {
      const error = exchange.abortReason instanceof Error ? exchange.abortReason : (this.error ?? new Error('socket closed before the answer'));
      this.settle(exchange, { kind: 'failed', error, stale: this.served > 0 && !exchange.answered && exchange.abortReason === undefined });
      return;
    }
    // the body broke off: fail its stream as node:http fails a response cut short
    const error = exchange.abortReason ?? Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    exchange.body?.destroy(error instanceof Error ? error : new Error(String(error)));
  }

  private detach(exchange: Exchange): void {
    if (this.current === exchange) this.current = undefined;
    if (exchange.onAbort) exchange.signal!.removeEventListener('abort', exchange.onAbort);
  }

  private settle(exchange: Exchange, outcome: HttpOutcome & { stale?: boolean }): void {
    if (exchange.settled) return;
    exchange.settled = true;
    exchange.settle(outcome);
  }

  private fail(exchange: Exchange, error: Error): false {
    this.settle(exchange, { kind: 'failed', error });
    this.detach(exchange);
    this.socket.destroy();
    return false;
  }

  private unsupported(exchange: Exchange, reason: string): false {
    this.settle(exchange, { kind: 'unsupported', reason });
    this.detach(exchange);
    this.socket.destroy();
    return false;
  }
}

/** ResponseBody is a 2xx answer's body as a stream, fed by its connection (paused while the reader is behind). */
class ResponseBody extends Readable {
  constructor(
    private readonly connection: Connection,
    private readonly exchange: Exchange,
  ) {
    super();
  }

  override _read(): void {
    this.connection.resumeFor(this.exchange);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (this.exchange.remaining > 0) this.connection.abandon(this.exchange);
    done(error);
  }
}
