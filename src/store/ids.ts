/**
 * Formats of the IDs a data-root stores, checked before any of them becomes a path component:
 * an ID read from evidence that does not match is a finding, never a path.
 */

/**
 * A layer's cache-id or a container's mount-id / init-id, as the driver directory is named: 64 hex
 * (dockerd's random IDs; pre-1.10 image and container IDs kept by the migration), or BuildKit's 25
 * base-36 characters for layers a BuildKit build exported; the init layer has `-init`.
 */
export const MOUNT_ID = /^(?:[a-f0-9]{64}|[a-z0-9]{25})(?:-init)?$/;
/** The same, as the target of an overlay2 l/ link: `../<id>/diff`. */
export const LINK_TARGET = /^\.\.\/((?:[a-f0-9]{64}|[a-z0-9]{25})(?:-init)?)\/diff$/;
/** overlay2's l/ link names: 26 characters of base32. */
export const LINK_ID = /^[A-Z2-7]{26}$/;
/** An entry of overlay2's `lower` file. */
export const LOWER_ENTRY = /^l\/[A-Z2-7]{26}$/;
/** BuildKit's snapshot directory names (identity.NewID: 25 characters of base36). */
export const BUILDKIT_ID = /^[a-z0-9]{25}$/;
