import { createHash } from 'node:crypto';
import { DEV_API_KEY } from '../../src/config';
import { eventually } from '../support/eventually';
import type { System } from '../support/system';

/** Helpers of the issuance tests; their system is test/support/system.ts. */

export const API_KEY_HEADER = { 'x-api-key': DEV_API_KEY };

/** Poll the status URL until the issuance ends (the run's own retries decide how long, or `timeoutMs`). */
export async function waitForIssuance(
  system: Pick<System, 'apiUrl'>,
  issuanceId: string,
  until: readonly string[] = ['completed', 'failed'],
  timeoutMs = Infinity,
): Promise<Record<string, unknown>> {
  const answer = await eventually(
    async (): Promise<{ status?: number; body?: Record<string, unknown>; error?: string }> => {
      const res = await fetch(`${system.apiUrl}/v1/issuances/${issuanceId}`, { headers: API_KEY_HEADER }).catch(
        (err: unknown) => String(err),
      );
      if (typeof res === 'string') return { error: res }; // the API not listening (yet, or again): not an answer
      return { status: res.status, body: (await res.json().catch(() => undefined)) as Record<string, unknown> };
    },
    (a) => a.status === 200 && until.includes(a.body?.status as string),
    { what: `issuance ${issuanceId} to reach ${until.join('/')}`, timeoutMs, intervalMs: 250 },
  );
  return answer.body!;
}

export { countWorkflows, findMarkers, markedPng, PNG_SIGNATURE, scanDatabase, scanHistories } from '../support/scans';

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
