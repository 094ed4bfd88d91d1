import { encodeUtf8, toHex } from '../bytes.js';
import { sha256 } from './sha256.js';

/** `sha256:<64 hex>` */
export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${toHex(sha256(data))}`;
}

/**
 * The chainID of each prefix of a list of diffIDs: chain[0] = diff[0];
 * chain[n] = sha256(chain[n-1] + " " + diff[n]) over the ASCII of the full `sha256:` strings.
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : sha256Digest(encodeUtf8(`${prev} ${d}`)));
  }
  return out;
}

export function chainId(diffIds: readonly string[]): string | undefined {
  return chainIds(diffIds).pop();
}
