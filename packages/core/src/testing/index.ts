// Contract suites for implementations of tether's ports. They use vitest.
export { eventStoreContract, type EventStoreFactory } from './eventStoreContract.js';
export { liveProcesses, machineContract, processesOf, type MachineContractOptions, type MachineFactory, type MachineUnderTest } from './machineContract.js';
export { eventually } from './eventually.js';
export { rejection } from './rejection.js';
export { followStdout } from './followStdout.js';
export { CuttableProxy, type ProxiedConnection } from './cuttableProxy.js';
export { mountSmallDisk, type SmallDisk } from './smallDisk.js';
