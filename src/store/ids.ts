/**
 * Formats of the IDs a data-root stores, checked before any of them becomes a path component:
 * an ID read from evidence that does not match is a finding, never a path.
 */

/** A layer's or container's cache-id / mount-id: 64 hex (dockerd's stringid.GenerateRandomID). */
export const CACHE_ID = /^[a-f0-9]{64}$/;
/** A mount-id or init-id: 64 hex, the init layer with `-init`. */
export const MOUNT_ID = /^[a-f0-9]{64}(-init)?$/;
/** overlay2's l/ link names: 26 characters of base32. */
export const LINK_ID = /^[A-Z2-7]{26}$/;
/** An entry of overlay2's `lower` file. */
export const LOWER_ENTRY = /^l\/[A-Z2-7]{26}$/;
/** BuildKit's snapshot directory names (identity.NewID: 25 characters of base36). */
export const BUILDKIT_ID = /^[a-z0-9]{25}$/;
/** Older engines used cache-ids of 64 hex for every driver; some drivers suffix `-init`. */
export function isLayerDirName(name: string): boolean {
  return MOUNT_ID.test(name);
}

/** A cache-id or mount-id as read from a file: trimmed, then checked. */
export function checkedId(raw: string | undefined, re: RegExp = MOUNT_ID): { id?: string; bad?: string } {
  if (raw === undefined) return {};
  const id = raw.trim();
  return re.test(id) ? { id } : { bad: id };
}
