import { DefaultFailureConverter } from '@temporalio/common';

/**
 * Failure messages and stack traces go into an encoded payload (which the payload codec encrypts)
 * instead of plain text in the workflow history. Loaded by path (`failureConverterPath`), by the
 * client, the worker and inside the workflow bundle, so this module imports nothing Node-only.
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
