// Where a `--tar` snapshot lives in the bucket: `<dest>.tar` beside the prefix (SPEC §4), plus its incremental parts.

/** tarObjectKey maps dest "runpod/abc/" to "runpod/abc.tar" (the bucket root's snapshot is "workspace.tar"). */
export function tarObjectKey(dest: string): string {
  const bare = dest.replace(/\/+$/, '');
  return (bare.length > 0 ? bare : 'workspace') + '.tar';
}
