import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { resolveTemporalBinary } from '../../scripts/lib/local-services';
import type { ApiHandle } from '../../src/api/server';
import { DEV_CODEC_AUTH_TOKEN, type Config } from '../../src/config';
import { temporalRedriver } from '../../src/operations/authorizations';
import { connectClient, postCallback } from './callbacks-harness';
import { callbackConfig, openDb, startCallbackApi } from '../support/system';

jest.setTimeout(120_000);

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}
interface HistoryEvent {
  workflowExecutionStartedEventAttributes?: { input?: { payloads?: JsonPayload[] } };
  workflowExecutionSignaledEventAttributes?: { signalName?: string };
}
const fromBase64 = (value: string | undefined) => Buffer.from(value ?? '', 'base64').toString('utf8');

/**
 * The Temporal CLI as a codec client: `temporal workflow show --codec-endpoint` decodes a whole
 * history through our /codec endpoint, including the empty payload list of a signal with no
 * arguments (the CLI posts `{}` for it).
 */
describe('the Temporal CLI reads a history through the codec endpoint', () => {
  let config: Config;
  let api: ApiHandle;
  let client: Client;

  beforeAll(async () => {
    config = await callbackConfig();
    api = await startCallbackApi(config);
    client = await connectClient(config);
  });

  afterAll(async () => {
    await client?.connection.close();
    await api?.close();
    const database = await openDb(config);
    await database.db.dropDatabase().catch(() => undefined);
    await database.close();
  });

  it('shows an authorization run that got a `redrive` signal (no arguments), decoded', async () => {
    // A real start (the API's callback path, no worker on the task queue) and the operators' re-drive signal.
    const userId = `user-cli-${randomUUID()}`;
    const accepted = await postCallback(api.url, {
      userId,
      verifierDid: 'did:air:verifier-cli',
      schemaId: 'kyc-basic',
    });
    expect(accepted.status).toBe(200);
    const workflowId = accepted.body.workflowId as string;
    try {
      expect(await temporalRedriver(client)(workflowId)).toBe(true);

      const temporal = resolveTemporalBinary(
        { dataDir: resolve(config.CAK_DATA_DIR), toolsDir: resolve(config.CAK_TOOLS_DIR) },
        () => undefined,
      );
      const args = ['workflow', 'show', '--workflow-id', workflowId, '--address', config.TEMPORAL_ADDRESS];
      args.push('--namespace', config.TEMPORAL_NAMESPACE, '--output', 'json');
      args.push('--codec-endpoint', `${api.url}/codec`, '--codec-auth', `Bearer ${DEV_CODEC_AUTH_TOKEN}`);
      // Rejects unless the CLI exits 0 (it retries a refused decode until its deadline, then fails).
      const { stdout } = await promisify(execFile)(temporal, args, { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 });

      const { events } = JSON.parse(stdout) as { events: HistoryEvent[] };
      const signalled = events.find((e) => e.workflowExecutionSignaledEventAttributes);
      expect(signalled?.workflowExecutionSignaledEventAttributes).toMatchObject({ signalName: 'redrive' });
      const [input] = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
      expect(fromBase64(input?.metadata?.encoding)).toBe('json/plain'); // decrypted by the endpoint
      expect(JSON.parse(fromBase64(input?.data))).toMatchObject({ userId, schemaId: 'kyc-basic' });
    } finally {
      await client.workflow.getHandle(workflowId).terminate('test over');
    }
  });
});
