// Where the CLI writes: human lines on stdout, problems on stderr, JSON lines for --json, and one in-place progress line on a TTY.

/** OutputStream is the part of a Node write stream the CLI uses (process.stdout/stderr, or a fake in tests). */
export interface OutputStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

/** OutputMode picks the flavour of output for one run. */
export interface OutputMode {
  json: boolean;
  quiet: boolean;
  verbose: boolean;
}

const CLEAR_LINE = '\r\x1b[K';

/** Output is the only writer of stdout/stderr in swm; renderers decide what to say, Output decides where and how. */
export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
  /** live is true when an in-place progress line may be drawn: stdout is a terminal and neither --json nor -q is set. */
  readonly live: boolean;
  private readonly stdout: OutputStream;
  private readonly stderr: OutputStream;
  private statusText = '';

  constructor(mode: OutputMode, stdout: OutputStream = process.stdout, stderr: OutputStream = process.stderr) {
    this.json = mode.json;
    this.quiet = mode.quiet;
    this.verbose = mode.verbose;
    this.stdout = stdout;
    this.stderr = stderr;
    this.live = stdout.isTTY === true && !mode.json && !mode.quiet;
  }

  /** line prints a human line on stdout (results, per-file actions, summaries); nothing with --json or -q. */
  line(text: string): void {
    if (this.json || this.quiet) return;
    this.withStatusCleared(() => this.stdout.write(text + '\n'));
  }

  /** problem prints a line on stderr that -q keeps (conflicts, per-path errors, fatal errors). */
  problem(text: string): void {
    this.withStatusCleared(() => this.stderr.write(text + '\n'));
  }

  /** warning prints a line on stderr unless -q. */
  warning(text: string): void {
    if (this.quiet) return;
    this.problem(text);
  }

  /** jsonLine prints one JSON object on its own line on stdout. */
  jsonLine(value: object): void {
    this.stdout.write(JSON.stringify(value) + '\n');
  }

  /** status replaces the in-place progress line (live mode only), cut to the terminal width. */
  status(text: string): void {
    if (!this.live) return;
    const width = Math.max(20, (this.stdout.columns || 80) - 1);
    this.statusText = text.length > width ? text.slice(0, width - 1) + '…' : text;
    this.stdout.write(CLEAR_LINE + this.statusText);
  }

  /** clearStatus removes the in-place progress line for good. */
  clearStatus(): void {
    if (!this.live || this.statusText === '') return;
    this.stdout.write(CLEAR_LINE);
    this.statusText = '';
  }

  private withStatusCleared(write: () => void): void {
    if (!this.live || this.statusText === '') {
      write();
      return;
    }
    this.stdout.write(CLEAR_LINE);
    write();
    this.stdout.write(this.statusText);
  }
}

/** formatBytes renders a byte count for humans: 0 B, 512 B, 1.5 KiB, 3.4 MiB, 1.02 GiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${Math.round(bytes)} B`;
  return `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)} ${units[unit]}`;
}

/** formatSeconds renders a duration: 0.4s, 12.3s, 2m05s, 1h02m. */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : seconds.toFixed(0)}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
