// Workspace-relative paths and object keys: S3 byte-order comparison, joining with the dest prefix, and escape checks.

/**
 * compareKeys orders strings by their UTF-8 bytes, the order S3 lists keys in.
 * JS `<` compares UTF-16 code units, which differs for characters above U+FFFF vs U+E000–U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    // Surrogates (D800–DFFF) encode code points above U+FFFF, which sort after every BMP character in UTF-8.
    const sa = ca >= 0xd800 && ca <= 0xdfff;
    const sb = cb >= 0xd800 && cb <= 0xdfff;
    if (sa !== sb) return sa ? 1 : -1;
    return ca - cb;
  }
  return a.length - b.length;
}

/** normalizeDest turns a dest like "/runpod/abc//" into "runpod/abc/" (always a trailing slash, or "" for the bucket root). */
export function normalizeDest(dest: string): string {
  const parts = dest.split('/').filter((p) => p.length > 0);
  return parts.length === 0 ? '' : parts.join('/') + '/';
}

/** defaultDest maps an id to its default dest: `runpod:abc123` → `runpod/abc123/`. */
export function defaultDest(id: string): string {
  return normalizeDest(id.replaceAll(':', '/'));
}

/**
 * unsafeRelativePath returns why a remote-supplied relative path must not be written inside a workspace
 * (absolute, `..` or `.` segments, NUL, empty segments, backslashes), or undefined when it is safe.
 */
export function unsafeRelativePath(rel: string): string | undefined {
  if (rel.length === 0) return 'empty path';
  if (rel.includes('\0')) return 'contains a NUL byte';
  if (rel.startsWith('/')) return 'absolute path';
  if (rel.includes('\\')) return 'contains a backslash';
  const segments = rel.split('/');
  for (const s of segments) {
    if (s === '..') return 'contains a ".." segment';
    if (s === '.') return 'contains a "." segment';
  }
  // an empty segment is allowed only as the trailing slash of a folder marker ("dir/")
  if (segments.slice(0, -1).some((s) => s.length === 0)) return 'contains an empty segment';
  return undefined;
}
