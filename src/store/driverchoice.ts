import { DatarootError } from '../formats/errors.js';
import { readContainers } from './containers.js';
import { DRIVER_PRIORITY, HEX64, isKnownDriver, LAYOUT as L } from './layout.js';
import type { OpenedRoot } from './root.js';

/** One `image/<driver>/` store of a root, with what it holds. */
export interface ImageStoreInfo {
  driver: string;
  known: boolean;
  images: number;
  layers: number;
  tags: boolean;
  /** Whether `<root>/<driver>/` holds anything (dockerd's "prior driver"). */
  driverDirHasContent: boolean;
  /** Containers whose config.v2.json names this driver. */
  containers: number;
}

export interface DriverChoice {
  driver: string;
  /** How it was chosen. */
  reason: 'flag' | 'only-store' | 'prior-driver' | 'containers' | 'store-content' | 'priority' | 'default';
  stores: ImageStoreInfo[];
  /** Drivers whose `<root>/<driver>/` has content: with several, dockerd refuses to start. */
  priorDrivers: string[];
  /** What a user should know about the choice (several populated stores, dockerd refusing to start). */
  notes: string[];
}

function hasContent(r: OpenedRoot, rel: string): boolean {
  return r.fs.names(rel).length > 0;
}

/** The image stores of a root with their counts. */
export function imageStores(r: OpenedRoot): ImageStoreInfo[] {
  const containers = new Map<string, number>();
  for (const c of readContainers(r.fs)) {
    const d = c.config?.Driver;
    if (typeof d === 'string') containers.set(d, (containers.get(d) ?? 0) + 1);
  }
  return r.imageStores.map((driver) => ({
    driver,
    known: isKnownDriver(driver),
    images: r.fs.names(L.imageContentDir(driver)).filter((n) => HEX64.test(n)).length,
    layers: r.fs.names(L.layerDbDir(driver)).filter((n) => HEX64.test(n)).length,
    tags: r.fs.kind(L.repositories(driver)) === 'file' && (r.fs.lstat(L.repositories(driver))?.size ?? 0) > '{"Repositories":{}}'.length,
    driverDirHasContent: isKnownDriver(driver) && r.fs.isDir(driver) && hasContent(r, driver),
    containers: containers.get(driver) ?? 0,
  }));
}

/**
 * Whether `<root>/<driver>/` counts as a "prior" driver for dockerd 20.10 (scanPriorDrivers): it
 * exists and is not empty; an unreadable one counts too (isEmptyDir treats any error as content).
 * vfs never counts.
 */
function isPrior(r: OpenedRoot, d: string): boolean {
  if (d === 'vfs') return false;
  const k = r.fs.kind(d);
  if (k === 'missing') return false;
  if (k !== 'dir') return true;
  try {
    return (r.fs.list(d) ?? []).length > 0;
  } catch {
    return true;
  }
}

/**
 * The graphdriver whose store dataroot reads, chosen as dockerd 20.10's graphdriver.New chooses it:
 * the configured driver (`--driver`), else the "prior" driver (its `<root>/<driver>/` has content)
 * first in the priority list. Where dockerd would refuse to start (several prior drivers) or has
 * nothing to go by, the containers' `Driver` fields and the image stores that hold images decide,
 * and a note says so. An unknown driver name is refused only when it is the one chosen.
 */
export function chooseDriver(r: OpenedRoot, flag?: string): DriverChoice {
  const stores = imageStores(r);
  const prior = DRIVER_PRIORITY.filter((d) => isPrior(r, d));
  const notes: string[] = [];
  const populated = stores.filter((s) => s.images > 0 || s.layers > 0 || s.tags);
  const pick = (driver: string, reason: DriverChoice['reason']): DriverChoice => ({ driver, reason, stores, priorDrivers: [...prior], notes });
  const byContainers = (among: readonly string[]): string | undefined =>
    [...stores].filter((s) => s.containers > 0 && among.includes(s.driver)).sort((a, b) => b.containers - a.containers)[0]?.driver;
  const byContent = (among: readonly string[]): string | undefined =>
    [...populated].filter((s) => among.includes(s.driver)).sort((a, b) => b.images + b.layers - (a.images + a.layers))[0]?.driver;
  if (flag !== undefined) {
    if (!isKnownDriver(flag))
      throw new DatarootError('STORE_DRIVER_UNKNOWN', `--driver ${flag}: dataroot knows ${DRIVER_PRIORITY.join(', ')} and windowsfilter`, { driver: flag });
    if (!r.imageStores.includes(flag)) notes.push(`--driver ${flag}: there is no image/${flag}/ store in this root`);
    return pick(flag, 'flag');
  }
  if (populated.length > 1) notes.push(`several image stores hold images: ${populated.map((s) => s.driver).join(', ')} (--driver chooses)`);
  if (prior.length > 1) notes.push(`dockerd 20.10 would refuse to start without --storage-driver: ${prior.join(', ')} all hold content`);
  let choice: DriverChoice;
  if (prior.length === 1) choice = pick(prior[0]!, 'prior-driver');
  else if (prior.length > 1) {
    const c = byContainers(prior);
    const p = byContent(prior);
    choice = c !== undefined ? pick(c, 'containers') : p !== undefined ? pick(p, 'store-content') : pick(prior[0]!, 'priority');
  } else if (stores.length === 1) choice = pick(stores[0]!.driver, 'only-store');
  else {
    const all = stores.map((s) => s.driver);
    const c = byContainers(all);
    const p = byContent(all);
    const first = DRIVER_PRIORITY.find((d) => r.imageStores.includes(d)) ?? DRIVER_PRIORITY.find((d) => r.imageTampered.includes(`image/${d}`));
    choice =
      c !== undefined
        ? pick(c, 'containers')
        : p !== undefined
          ? pick(p, 'store-content')
          : first !== undefined
            ? pick(first, 'priority')
            : pick(stores[0]?.driver ?? 'overlay2', 'default');
  }
  const chosen = stores.find((s) => s.driver === choice.driver);
  const other = populated.find((s) => s.driver !== choice.driver);
  if ((chosen === undefined || (chosen.images === 0 && chosen.layers === 0)) && other !== undefined) {
    notes.push(
      `dockerd would use ${choice.driver}, whose store is empty; image/${other.driver}/ holds ${other.images} images (--driver ${other.driver} reads it)`,
    );
  }
  if (!isKnownDriver(choice.driver)) {
    throw new DatarootError(
      'STORE_DRIVER_UNKNOWN',
      `image/${choice.driver}/ is the image store of an unknown graphdriver "${choice.driver}" (known: ${DRIVER_PRIORITY.join(', ')}, windowsfilter)`,
      {
        driver: choice.driver,
      },
    );
  }
  return choice;
}
