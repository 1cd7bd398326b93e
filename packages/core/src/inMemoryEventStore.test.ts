import { eventStoreContract } from './testing/index.js';
import { InMemoryEventStore } from './inMemoryEventStore.js';

eventStoreContract('InMemoryEventStore', async () => new InMemoryEventStore());
