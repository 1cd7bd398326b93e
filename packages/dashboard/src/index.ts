// The public API of @tether/dashboard.
export { startDashboard, type Dashboard, type DashboardOptions } from './dashboardServer.js';
export type { MachineCheck, MachineDirectory } from './machineDirectory.js';
export { listExecutions, type ExecutionRow, type ListQuery, type ListResult } from './executionList.js';
export { CSP, isLoopback } from './security.js';
