// Every workflow the worker runs. Workflow code is bundled by Temporal and replayed: keep it deterministic.
export { connectivityCheckWorkflow } from './connectivity';
export { issuanceWorkflow, stagingSweepWorkflow } from './issuance';
export { authorizationWorkflow } from './authorization';
export { auditSealWorkflow } from './audit';
