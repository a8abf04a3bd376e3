import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { decodeOptionalFailureToOptionalError, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow';
import type { temporal } from '@temporalio/proto';
import { parseKeyring } from '../../src/crypto/keyring';
import { dataConverterFor, payloadCodecFor } from '../../src/crypto/payload-codec';
import { connectivityCheckWorkflow } from '../../src/workflows';
import { eventually } from '../support/eventually';
import { connectClient, startTestWorker, testConfig, uniqueId } from '../support/temporal';

/** Payload bytes as text, so a plaintext marker inside them would show up in the serialized history. */
function serialize(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
}

function payloadsIn(value: unknown, found: Payload[] = []): Payload[] {
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return found;
  const record = value as Record<string, unknown>;
  if (record.metadata && record.data instanceof Uint8Array) found.push(record);
  for (const child of Object.values(record)) payloadsIn(child, found);
  return found;
}

/** Polls a run's history until `done` holds for it, for at most `timeoutMs`. */
async function historyWhen(
  client: Client,
  workflowId: string,
  done: (events: temporal.api.history.v1.IHistoryEvent[]) => boolean,
  timeoutMs: number,
): Promise<temporal.api.history.v1.IHistoryEvent[]> {
  return eventually(async () => (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [], done, {
    what: `the history of ${workflowId} to satisfy ${done.toString()}`,
    timeoutMs,
  });
}

describe('Temporal payload codec through a real worker', () => {
  const config = testConfig();
  let client: Client;

  beforeAll(async () => {
    client = await connectClient(config);
  });
  afterAll(async () => {
    await client.connection.close();
  });

  it('keeps workflow inputs and results out of the server history in plaintext', async () => {
    const marker = uniqueId('PLAINTEXT-MARKER');
    const workflowId = uniqueId('wf-codec');
    const { worker, taskQueue, close } = await startTestWorker(config);
    try {
      const result = await worker.runUntil(
        client.workflow.execute(connectivityCheckWorkflow, { taskQueue, workflowId, args: [marker] }),
      );
      expect(result.probeId).toBe(marker);
    } finally {
      await close();
    }

    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const raw = serialize(history);
    expect(raw).not.toContain(marker);
    // the detector itself works: an unencrypted payload of the marker would be caught
    expect(serialize(defaultPayloadConverter.toPayload(marker))).toContain(marker);

    const payloads = payloadsIn(history);
    expect(payloads.length).toBeGreaterThan(0);
    const codec = payloadCodecFor(parseKeyring(config.CAK_CODEC_KEYS));
    const decoded = await codec.decode(payloads);
    const values = decoded.map((p) => defaultPayloadConverter.fromPayload<unknown>(p));
    expect(JSON.stringify(values)).toContain(marker);
  });

  it('a client without the codec cannot read the workflow input', async () => {
    const marker = uniqueId('PLAINTEXT-MARKER');
    const workflowId = uniqueId('wf-codec');
    const { worker, taskQueue, close } = await startTestWorker(config);
    const bare = new Client({
      connection: await Connection.connect({ address: config.TEMPORAL_ADDRESS }),
      namespace: config.TEMPORAL_NAMESPACE,
    });
    try {
      await worker.runUntil(
        client.workflow.execute(connectivityCheckWorkflow, { taskQueue, workflowId, args: [marker] }),
      );
      const described = await bare.workflow.getHandle(workflowId).fetchHistory();
      const started = described.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      expect(Buffer.from(started!.metadata!.encoding!).toString()).toBe('binary/encrypted');
    } finally {
      await bare.connection.close();
      await close();
    }
  });

  it('refuses a workflow started without the codec: its workflow task fails and no activity runs', async () => {
    const marker = uniqueId('PLAINTEXT-MARKER');
    const workflowId = uniqueId('wf-plain');
    const { worker, taskQueue, close } = await startTestWorker(config);
    const bare = new Client({
      connection: await Connection.connect({ address: config.TEMPORAL_ADDRESS }),
      namespace: config.TEMPORAL_NAMESPACE,
    });
    try {
      await bare.workflow.start(connectivityCheckWorkflow, { taskQueue, workflowId, args: [marker] });
      const events = await worker.runUntil(
        historyWhen(bare, workflowId, (e) => e.some((event) => event.workflowTaskFailedEventAttributes), 15_000),
      );
      const failed = events.find((event) => event.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes;
      expect(failed).toBeDefined();
      expect(events.some((event) => event.activityTaskScheduledEventAttributes)).toBe(false);
      expect(events.some((event) => event.workflowExecutionCompletedEventAttributes)).toBe(false);
      expect((await bare.workflow.getHandle(workflowId).describe()).status.name).toBe('RUNNING');

      // The worker's failure is encoded like any other: only the codec's holders can read why it failed.
      expect(failed!.failure!.message).toBe('Encoded failure');
      const why = await decodeOptionalFailureToOptionalError(
        loadDataConverter(dataConverterFor(parseKeyring(config.CAK_CODEC_KEYS))),
        failed!.failure,
      );
      expect(why?.message).toContain('not encrypted');
    } finally {
      await bare.workflow.getHandle(workflowId).terminate('test cleanup');
      await bare.connection.close();
      await close();
    }
  });
});
