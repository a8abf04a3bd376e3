import { spawn } from 'node:child_process';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import type { AddressInfo } from 'node:net';
import { MongoClient } from 'mongodb';
import { apiMetrics } from '../../src/api/metrics';
import type { ApiHandle } from '../../src/api/server';
import { parseKeyring } from '../../src/crypto/keyring';
import { dataConverterFor } from '../../src/crypto/payload-codec';
import { createMetrics, metricsServer } from '../../src/observability/metrics';
import { activityFailureMetrics } from '../../src/workers/metrics-interceptor';
import { connectivityCheckWorkflow } from '../../src/workflows';
import { freePort } from '../support/ports';
import { connectClient, testConfig, uniqueId, workflowBundle } from '../support/temporal';
import { NativeConnection } from '@temporalio/worker';
import { eventually, postCallback } from './callbacks-harness';
import { callbackConfig, runWorker, type RunningWorker, startCallbackApi } from '../support/system';

/** One sample of a Prometheus text exposition, e.g. value(text, 'cak_callbacks_total{outcome="started"') */
function value(text: string, prefix: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('API metrics', () => {
  let api: ApiHandle;
  let worker: RunningWorker;

  beforeAll(async () => {
    const config = await callbackConfig({ API_METRICS_REFRESH_SECONDS: '1' });
    worker = await runWorker(config);
    api = await startCallbackApi(config);
  });
  afterAll(async () => {
    await api.close();
    await worker.stop();
  });

  it('counts requests by route template, callbacks by outcome and code, and reads gauges from the database', async () => {
    await fetch(`${api.url}/healthz`);
    const payload = { userId: uniqueId('m-user'), verifierDid: 'did:air:id:metrics-verifier', schemaId: 'kyc-basic' };
    expect((await postCallback(api.url, payload)).status).toBe(200);
    expect((await postCallback(api.url, payload)).status).toBe(200);
    expect((await postCallback(api.url, payload, { secret: 'whsec_d3JvbmctbWV0cmljcy1zZWNyZXQ=' })).status).toBe(401);
    const scrape = async () => (await fetch(`${api.metricsUrl}/metrics`)).text();

    const text = await eventually(scrape, (t) => (value(t, 'cak_audit_chain_length') ?? 0) >= 1);
    expect(value(text, 'cak_http_requests_total{method="GET",route="/healthz",status="200"')).toBe(1);
    expect(value(text, 'cak_callbacks_total{outcome="started",code=""')).toBe(1);
    expect(value(text, 'cak_callbacks_total{outcome="duplicate",code=""')).toBe(1);
    expect(text).toMatch(/cak_callbacks_total\{outcome="rejected",code="SIGNATURE_[A-Z_]+",component="api"\} 1/);
    expect(
      value(text, 'cak_authorizations{state="unrouted"') ?? value(text, 'cak_authorizations{state="no-data"'),
    ).toBe(1);
    expect(value(text, 'cak_callback_inbox_pending')).toBe(0);
    expect(text).toContain('cak_http_request_duration_seconds_bucket');
    expect(text).not.toContain(payload.userId); // labels carry templates and codes, never identifiers
  });

  it('serves /metrics on its own listener only, never on the public port', async () => {
    expect(api.metricsUrl).not.toBe(api.url);
    expect((await fetch(`${api.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${api.metricsUrl}/metrics`)).status).toBe(200);
    expect((await fetch(`${api.metricsUrl}/v1/issuances`)).status).toBe(404);
  });
});

describe('database gauges', () => {
  it('come from a cache refreshed on an interval: a scrape sends the database no command', async () => {
    const config = testConfig({ MONGODB_DB: uniqueId('gauges').slice(0, 40) });
    const mongo = new MongoClient(config.MONGODB_URI, { monitorCommands: true, serverSelectionTimeoutMS: 5_000 });
    const commands: string[] = [];
    mongo.on('commandStarted', (event) => commands.push(event.commandName));
    const metrics = apiMetrics(mongo.db(config.MONGODB_DB), parseKeyring(config.CAK_AUDIT_KEYS), {
      refreshMs: 3_600_000, // the test refreshes by hand
    });
    const listener = metricsServer(metrics);
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}/metrics`;
    try {
      await metrics.gauges.refresh();
      const perRefresh = commands.length;
      expect(perRefresh).toBeGreaterThan(0); // the monitor sees the gauges' queries
      for (let i = 0; i < 5; i++) {
        const text = await (await fetch(url)).text();
        expect(text).toMatch(/^cak_callback_inbox_pending\{component="api"\} 0$/m);
      }
      expect(commands.length).toBe(perRefresh); // five scrapes, no command
      await metrics.gauges.refresh();
      expect(commands.length).toBeGreaterThan(perRefresh);
    } finally {
      metrics.gauges.stop();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
      await mongo.close();
    }
  });
});

describe('worker metrics', () => {
  it('counts failed activity attempts by activity and error type', async () => {
    const config = testConfig();
    const metrics = createMetrics('worker');
    const client = await connectClient(config);
    const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
    const taskQueue = uniqueId('tq-metrics');
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: workflowBundle(),
      dataConverter: dataConverterFor(parseKeyring(config.CAK_CODEC_KEYS)),
      activities: {
        writeAndReadProbe: () => Promise.reject(ApplicationFailure.nonRetryable('probe broken', 'ProbeBroken')),
      },
      interceptors: { activity: [activityFailureMetrics(metrics)] },
      shutdownForceTime: '5s',
    });
    try {
      const run = client.workflow.execute(connectivityCheckWorkflow, {
        taskQueue,
        workflowId: uniqueId('wf-metrics'),
        args: ['probe'],
      });
      await expect(worker.runUntil(run)).rejects.toBeInstanceOf(WorkflowFailedError);
    } finally {
      await connection.close();
      await client.connection.close();
    }
    const text = await metrics.registry.metrics();
    expect(value(text, 'cak_activity_failures_total{activity="writeAndReadProbe",type="ProbeBroken"')).toBe(1);
  });

  it('the worker process serves /healthz, /metrics and the SDK metrics, and exits cleanly on SIGTERM', async () => {
    const [healthPort, sdkPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, ['-r', '@swc-node/register', 'src/workers/worker.ts'], {
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        TEMPORAL_TASK_QUEUE: uniqueId('tq-worker-proc'),
        WORKER_HEALTH_PORT: String(healthPort),
        WORKER_SDK_METRICS_PORT: String(sdkPort),
        STAGING_SWEEP_INTERVAL_SECONDS: '3600',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const health = await eventually(
        () =>
          fetch(`http://127.0.0.1:${healthPort}/healthz`).then(
            (r) => r.status,
            () => 0,
          ),
        (status) => status === 200,
        120_000,
      );
      expect(health).toBe(200);
      const ours = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      expect(ours).toContain('cak_process_resident_memory_bytes');
      expect(ours).toContain('# TYPE cak_activity_failures_total counter');
      const sdk = await eventually(
        () =>
          fetch(`http://127.0.0.1:${sdkPort}/metrics`).then(
            (r) => r.text(),
            () => '',
          ),
        (t) => t.includes('temporal_'),
      );
      expect(sdk).toMatch(/^temporal_\w+/m);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 180_000);
});
