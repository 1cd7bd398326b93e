// The public API of @tether/store-level.
export {
  LevelEventStore,
  type LevelEventStoreOptions,
  type LevelEventStoreStats,
  type PruneOptions,
  type PruneResult,
} from './levelEventStore.js';
export { MARKER_FILE, STORE_FORMAT, FORMAT_VERSION } from './openStoreDatabase.js';
