/**
 * Formats of the names containerd's stores use, checked before any of them becomes a path
 * component or is trusted as a reference (containerd's identifiers.Validate, go-digest).
 */

/** containerd identifiers (namespaces, container and lease IDs): alphanumerics joined by single `.`, `_` or `-`, at most 76 characters. */
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

export function isIdentifier(s: string): boolean {
  return s.length > 0 && s.length <= 76 && IDENTIFIER.test(s);
}

/** A sha256 digest as a blob name: `sha256:<64 lowercase hex>`. */
export const BLOB_DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isBlobDigest(s: string): boolean {
  return BLOB_DIGEST.test(s);
}

/** A snapshotter's on-disk snapshot id: decimal digits, no leading zero, within 2^53. */
export function isSnapshotId(s: string): boolean {
  return /^[1-9][0-9]{0,15}$/.test(s) && Number.isSafeInteger(Number(s));
}

/** An ingest directory name: the hex sha256 of the ingest ref. */
export function isIngestDir(s: string): boolean {
  return /^[a-f0-9]{64}$/.test(s);
}
