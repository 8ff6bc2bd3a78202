// RequestSigner (the direct GET's and PUT's SigV4 signer) against @smithy/signature-v4, the SDK's own signer: the same request must get the same headers.
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { encodeKey, RequestSigner, Sha256 } from '../../src/storage/s3-direct.js';
import { createHash } from 'node:crypto';

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

interface Case {
  host: string;
  region: string;
  service?: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  path: string;
  range?: string;
  /** a PUT of this body, with these headers (content-length, x-amz-meta-*, if-none-match). */
  put?: { body: Buffer; headers: Record<string, string> };
  now: number;
}

/** payloadHash is the x-amz-content-sha256 of a case (over plain http, the body is signed). */
function payloadHash(c: Case): string {
  return c.put ? createHash('sha256').update(c.put.body).digest('hex') : EMPTY_SHA256;
}

/** ownHeaders are the case's request headers other than those the signer adds. */
function ownHeaders(c: Case): Record<string, string> {
  return { ...(c.range ? { range: c.range } : {}), ...(c.put?.headers ?? {}) };
}

/** sdkHeaders signs the case with the SDK's signer, as s3-direct.ts send() does, and returns the headers as a list. */
async function sdkHeaders(c: Case): Promise<Record<string, string>> {
  const signer = new SignatureV4({ credentials: c.credentials, region: c.region, service: c.service ?? 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false });
  const [hostname, port] = c.host.split(':');
  const signed = await signer.sign(
    {
      method: c.put ? 'PUT' : 'GET', protocol: 'http:', hostname: hostname!, port: port ? Number(port) : undefined, path: c.path, query: {},
      headers: { ...ownHeaders(c), host: c.host, 'x-amz-content-sha256': payloadHash(c) },
    },
    { signingDate: new Date(c.now) },
  );
  return signed.headers;
}

function asRecord(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

const base: Case = {
  host: '127.0.0.1:9000',
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
  path: '/bucket/dir/file.bin',
  now: Date.UTC(2024, 0, 2, 3, 4, 5, 678),
};

describe('RequestSigner', () => {
  const cases: [string, Case][] = [
    ['a plain GET', base],
    ['a ranged GET', { ...base, range: 'bytes=8388608-16777215' }],
    ['temporary credentials (a session token)', { ...base, credentials: { ...base.credentials, sessionToken: 'FwoGZXIvYXdzE//token+with/slashes==' } }],
    ['a key with spaces, unicode and reserved characters', { ...base, path: `/bucket/${encodeKey("dir/with space/ünïcode (1)!*'~.bin")}` }],
    ['a virtual-hosted bucket in another region', { ...base, host: 'bucket.s3.eu-west-3.amazonaws.com', region: 'eu-west-3', path: '/a/b' }],
    ['a range header with blanks to fold', { ...base, range: ' bytes=0-99  ' }],
    ['a PUT with swm metadata', { ...base, put: { body: Buffer.from('hello'), headers: { 'content-length': '5', 'x-amz-meta-swm-hash': '26c7827d889f6da3', 'x-amz-meta-swm-mtime': '1700000000123', 'x-amz-meta-swm-mode': '644', 'x-amz-meta-swm-type': 'file' } } }],
    ['a conditional PUT (If-None-Match) of an empty body with a session token', { ...base, credentials: { ...base.credentials, sessionToken: 'tok' }, put: { body: Buffer.alloc(0), headers: { 'content-length': '0', 'if-none-match': '*' } } }],
  ];
  for (const [name, c] of cases) {
    it(`signs ${name} exactly as the SDK's signer does`, async () => {
      const signer = new RequestSigner({ host: c.host, signing: { region: c.region, service: c.service ?? 's3', credentials: c.credentials } });
      const ours = asRecord(await signer.sign(c.put ? 'PUT' : 'GET', c.path, ownHeaders(c), payloadHash(c), c.now));
      const sdk = await sdkHeaders(c);
      expect(ours).toEqual(sdk);
    });
  }

  it('keeps the signing key for a day only, and per secret', async () => {
    let credentials = base.credentials;
    const signer = new RequestSigner({ host: base.host, signing: { region: base.region, service: 's3', credentials: async () => credentials } });
    for (const now of [base.now, base.now + 1000, base.now + 86_400_000, base.now + 86_400_000 + 3_600_000]) {
      expect(asRecord(await signer.sign('GET', base.path, {}, EMPTY_SHA256, now))).toEqual(await sdkHeaders({ ...base, now }));
    }
    credentials = { accessKeyId: 'AKIDOTHER', secretAccessKey: 'another-secret' };
    const now = base.now + 86_400_000 + 3_600_000;
    expect(asRecord(await signer.sign('GET', base.path, {}, EMPTY_SHA256, now))).toEqual(await sdkHeaders({ ...base, credentials, now }));
  });

  it('refuses to sign without credentials (the SDK then describes the problem)', async () => {
    const signer = new RequestSigner({ host: base.host, signing: { region: base.region, service: 's3', credentials: async () => ({ accessKeyId: '', secretAccessKey: '' }) } });
    await expect(signer.sign('GET', base.path)).rejects.toThrow();
  });
});
