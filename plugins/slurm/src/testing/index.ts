export { startSlurmCluster, slurmAvailability, type SlurmCluster, type SlurmAvailability } from './slurmCluster.js';
