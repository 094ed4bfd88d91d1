import { lstatSync, mkdirSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { Confined } from '../io/confined.js';
import { acquireLock } from '../io/lock.js';
import { chooseDriver } from '../store/driverchoice.js';
import { WRITABLE_DRIVERS } from '../store/layerwrite.js';
import { LAYOUT } from '../store/layout.js';
import { Store } from '../store/model.js';
import { openRoot } from '../store/root.js';
import { DirTimes, ensureLayout, removeStaging, validateTarget } from '../store/write.js';
import { removeTree } from '../io/confined.js';

/** The root a writer writes: a directory, and the driver to lay out when it was never started. */
export interface WriteTarget {
  root: string;
  driver?: string | undefined;
}

/**
 * Runs a write on a root directory while holding the daemon lock: refuses archives, a root a
 * running daemon holds (STORE_DAEMON_RUNNING), a directory that is not a data-root, and a root
 * whose store directories are symlinks or not directories (STORE_TARGET_UNSAFE), all before the
 * first write. A root that was never started is laid out first when a driver is given.
 */
export async function withWritableStore<T>(
  target: WriteTarget,
  fn: (s: Store) => Promise<T>,
  opts: { create: boolean; lock: boolean } = { create: false, lock: true },
): Promise<T> {
  const { root } = target;
  const g = target;
  let st;
  try {
    st = lstatSync(root);
  } catch {
    st = undefined;
  }
  if (st?.isFile() === true) throw new DatarootError('STORE_NOT_WRITABLE', `${root} is an archive: write into a data-root directory`, { file: root });
  if (st !== undefined && !st.isDirectory() && !st.isSymbolicLink())
    throw new DatarootError('STORE_NOT_A_DATAROOT', `${root} is not a directory`, { file: root });
  let createdRoot = false;
  if (st === undefined) {
    if (!opts.create) throw new DatarootError('STORE_NOT_FOUND', `data-root ${root} does not exist`, { file: root });
    mkdirSync(root, { recursive: true, mode: 0o710 });
    createdRoot = true;
  }
  const fs = Confined.open(root, 'data-root');
  const empty = fs.names('').length === 0;
  let lock: Awaited<ReturnType<typeof acquireLock>> | undefined;
  let made: string[] = [];
  const times = new DirTimes(fs);
  try {
    if (opts.lock && fs.exists(LAYOUT.volumesDb)) lock = await acquireLock(fs.abs(LAYOUT.volumesDb));
    if (opts.create) {
      const drivers = fs.names('image').filter((x) => (WRITABLE_DRIVERS as readonly string[]).includes(x));
      const drv = g.driver ?? drivers[0];
      if (drv === undefined) {
        throw new DatarootError(
          empty ? 'USAGE_DRIVER_REQUIRED' : 'STORE_NOT_A_DATAROOT',
          empty
            ? `${root} is empty: name the storage driver to lay it out (--driver ${WRITABLE_DRIVERS.join('|')})`
            : `${root} has no image store: name the storage driver (--driver ${WRITABLE_DRIVERS.join('|')})`,
          { file: root },
        );
      }
      if (!(WRITABLE_DRIVERS as readonly string[]).includes(drv))
        throw new DatarootError('STORE_DRIVER_UNSUPPORTED', `inject writes ${WRITABLE_DRIVERS.join(', ')} stores, not ${drv}`, { file: root });
      if (g.driver !== undefined && drivers.length > 0 && !drivers.includes(g.driver)) {
        throw new DatarootError('STORE_DRIVER_MISMATCH', `${root} holds a ${drivers.join(', ')} image store, not ${g.driver}`, { file: root });
      }
      if (!empty && !fs.exists('image') && !fs.exists(LAYOUT.volumesDb)) {
        throw new DatarootError('STORE_NOT_A_DATAROOT', `${root} is not empty and not a Docker data-root`, { file: root });
      }
      made = ensureLayout(fs, drv, times);
      if (opts.lock && lock === undefined) lock = await acquireLock(fs.abs(LAYOUT.volumesDb));
    }
    const r = await openRoot(root);
    try {
      const store = new Store(r, chooseDriver(r, g.driver));
      validateTarget(store.fs, store.driver);
      return await fn(store);
    } finally {
      r.close();
    }
  } catch (e) {
    // A refused write leaves the root as it was: what was laid out for it goes again.
    removeStaging(fs, made.reverse());
    times.restore();
    if (createdRoot) removeTree(root);
    throw e;
  } finally {
    await lock?.release();
  }
}
