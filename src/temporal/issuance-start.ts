import type { Client } from '@temporalio/client';
import { TypedSearchAttributes, type WorkflowIdReusePolicy } from '@temporalio/common';
import type { IssuanceInput } from '../domain/issuance';
import type { IssuanceDoc } from '../storage/issuances';
import type { issuanceWorkflow } from '../workflows/issuance';
import { CakIssuerDid, CakSchemaId, CakUserId } from './search-attributes';

/**
 * Starts the run of an accepted issuance (the API's intake, and an operator's retry): its workflow
 * id and search attributes come from the issuance document. The workflow is named by type, so the
 * callers load no workflow code.
 */
export function startIssuanceRun(
  client: Client,
  doc: IssuanceDoc,
  taskQueue: string,
  input: IssuanceInput,
  workflowIdReusePolicy: WorkflowIdReusePolicy,
) {
  return client.workflow.start<typeof issuanceWorkflow>('issuanceWorkflow', {
    taskQueue,
    workflowId: doc.workflowId,
    args: [input],
    workflowIdReusePolicy,
    typedSearchAttributes: new TypedSearchAttributes([
      { key: CakUserId, value: doc.userId },
      { key: CakSchemaId, value: doc.schemaId },
      { key: CakIssuerDid, value: doc.issuerDid },
    ]),
  });
}
