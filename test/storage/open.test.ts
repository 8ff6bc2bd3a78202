// openStorage: picks the backend for a spec, and keeps the AWS SDK out of the import graph of `file:` commands.
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/open.js';

const srcStorage = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/storage');
const scratch = mkdtempSync(join(tmpdir(), 'swm-open-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** staticImports follows `import … from '…'` (not `import()`) from a source file and returns every module reached. */
function staticImports(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?:type\s+)?[^'";]*?\sfrom\s+'([^']+)'|^\s*import\s+'([^']+)'/gm)) {
      const spec = m[1] ?? m[2]!;
      if (/^(?:import|export)\s+type\s/.test(m[0].trim())) continue; // erased at compile time
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else seen.add(spec);
    }
  };
  visit(entry);
  return seen;
}

describe('openStorage', () => {
  it('opens file: specs without the S3 backend or the AWS SDK in the static import graph', () => {
    const graph = [...staticImports(join(srcStorage, 'open.ts'))];
    expect(graph.some((m) => m.endsWith('/file.ts'))).toBe(true);
    expect(graph.filter((m) => m.endsWith('/s3.ts') || m.startsWith('@aws-sdk/') || m.startsWith('@smithy/'))).toEqual([]);
    // the check itself must be able to fail: s3.ts does import the SDK statically
    expect([...staticImports(join(srcStorage, 's3.ts'))]).toContain('@aws-sdk/client-s3');
  });

  it('returns a file backend for file: and honours create', async () => {
    const path = join(scratch, 'made-on-first-use');
    const plain = await openStorage({ kind: 'file', provider: 'file', path, text: `file:${path}` });
    expect(plain.description).toBe(`file:${path}`);
    await expect(plain.check()).rejects.toThrow(/does not exist/);
    const creating = await openStorage({ kind: 'file', provider: 'file', path, text: `file:${path}` }, { create: true });
    await creating.check();
    await plain.check();
  });

  it('returns an S3 backend for other providers without touching the network', async () => {
    const storage = await openStorage({ kind: 's3', provider: 'r2', bucket: 'ckpts', text: 'r2:ckpts', s3: { endpoint: 'http://127.0.0.1:1', region: 'auto' } });
    expect(storage.description).toBe('r2:ckpts');
    expect(storage.features.resumableMultipart).toBe(true);
    expect(storage.multipart).toBeDefined();
    await storage.close();
  });
});
