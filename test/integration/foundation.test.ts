import { type Client } from '@temporalio/client';
import { connectivityCheckWorkflow } from '../../src/workflows';
import { connectClient, startTestWorker, testConfig, uniqueId } from '../support/temporal';
import { MongoClient } from 'mongodb';

describe('a real worker against the local Temporal and database', () => {
  const config = testConfig();
  let client: Client;

  beforeAll(async () => {
    client = await connectClient(config);
  });
  afterAll(async () => {
    await client.connection.close();
  });

  it('runs a workflow whose activity writes to and reads from the database', async () => {
    const { worker, taskQueue, close } = await startTestWorker(config);
    const probeId = uniqueId('probe');
    try {
      const result = await worker.runUntil(
        client.workflow.execute(connectivityCheckWorkflow, { taskQueue, workflowId: uniqueId('wf'), args: [probeId] }),
      );
      expect(result).toEqual({ probeId, roundTrip: true });
    } finally {
      await close();
    }
    const mongo = new MongoClient(config.MONGODB_URI);
    try {
      const doc = await mongo.db(config.MONGODB_DB).collection<{ _id: string }>('probes').findOne({ _id: probeId });
      expect(doc?._id).toBe(probeId);
    } finally {
      await mongo.close();
    }
  });
});
