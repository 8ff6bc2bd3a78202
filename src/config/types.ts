// Shapes of a resolved sync target: which workspace, which bucket (and how to reach it), which dest prefix, which excludes.

/** ProviderConfig says how to reach an S3-compatible provider; named providers come from the config file. */
export interface ProviderConfig {
  endpoint?: string;
  region?: string;
  /** path-style addressing; defaults to true for IP/localhost endpoints. */
  pathStyle?: boolean;
  /** AWS shared-config profile to take credentials from. */
  profile?: string;
}

/** BucketSpec is a parsed `provider:bucket`. For `file:` the bucket is an absolute folder path. */
export type BucketSpec =
  | { kind: 'file'; provider: 'file'; path: string; text: string }
  | { kind: 's3'; provider: string; bucket: string; text: string; s3: ProviderConfig };

/** SyncTarget is everything a verb needs to know about where a workspace syncs to. */
export interface SyncTarget {
  id: string;
  /** absolute path of the workspace folder. */
  workspace: string;
  bucket: BucketSpec;
  /** key prefix with a trailing slash ("runpod/abc123/"), or "" for the bucket root. */
  dest: string;
  /** user excludes (flags, config, env), gitignore syntax; `.swmignore` is read by the engine. */
  excludes: string[];
  /** auto-sync interval in seconds, from config or flag. */
  interval: number;
}
