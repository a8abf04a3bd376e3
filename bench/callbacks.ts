import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { authorizationStartOptions } from '../src/api/callback-relay';
import { startApi } from '../src/api/server';
import type { AuthorizationInput, CallbackPayload } from '../src/domain/authorization';
import globalSetup from '../test/support/global-setup';
import { connectClient } from '../test/support/temporal';
import { signedCallback } from '../test/integration/callbacks-harness';
import { callbackConfig, openDb } from '../test/support/system';
import type { BenchResult } from './types';

/**
 * Callbacks acknowledged per second, and ack latency p50/p99, for unique and for duplicate
 * deliveries (signed HTTP POST -> verify -> validate -> workflow start, or a remembered duplicate
 * -> 2XX; duplicates logged after the answer), each over the same number of bare `client.workflow.start` calls against the same
 * Temporal server in the same process (new ids, then the same ids again), with the very start
 * request the API sends (same policies and search attributes). No worker polls either
 * task queue, so only the acknowledgement path is measured; every run is terminated afterwards.
 */

const PER_ROUND = 60;
const ROUNDS = 6;
const CONCURRENCY = 16;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

interface Measured {
  perSecond: number;
  latencies: number[];
}

async function measure(count: number, one: (i: number) => Promise<void>): Promise<Measured> {
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const i = next++;
        const t = performance.now();
        await one(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { perSecond: (count / (performance.now() - start)) * 1000, latencies: latencies.sort((a, b) => a - b) };
}

/** Rounds of one side: throughput is the median round's, latencies are pooled over all rounds. */
class Side {
  private readonly rounds: Measured[] = [];
  add(m: Measured): void {
    this.rounds.push(m);
  }
  summary(): Measured {
    const rates = this.rounds.map((r) => r.perSecond).sort((a, b) => a - b);
    return {
      perSecond: rates[Math.floor(rates.length / 2)]!,
      latencies: this.rounds.flatMap((r) => r.latencies).sort((a, b) => a - b),
    };
  }
}

function results(label: string, subject: Measured, baseline: Measured): BenchResult[] {
  const p = (m: Measured, q: number) => percentile(m.latencies, q);
  const figures = `callbacks ${subject.perSecond.toFixed(0)}/s p50 ${p(subject, 0.5).toFixed(1)} ms p99 ${p(subject, 0.99).toFixed(1)} ms; bare start ${baseline.perSecond.toFixed(0)}/s p50 ${p(baseline, 0.5).toFixed(1)} ms p99 ${p(baseline, 0.99).toFixed(1)} ms`;
  return [
    {
      name: `callback acks/s, ${label}`,
      detail: figures,
      ratio: subject.perSecond / baseline.perSecond,
      target: 0.9,
      kind: 'min',
    },
    {
      name: `callback ack p99, ${label}`,
      detail: `${CONCURRENCY} in flight`,
      ratio: p(subject, 0.99) / p(baseline, 0.99),
      target: 2,
      kind: 'max',
    },
  ];
}

export async function run(): Promise<BenchResult[]> {
  await globalSetup();
  const config = await callbackConfig({ LOG_LEVEL: 'silent' });
  const api = await startApi(config);
  const client: Client = await connectClient(config);
  const database = await openDb(config);
  const baselineQueue = `${config.TEMPORAL_TASK_QUEUE}-bare`;
  const started: string[] = [];
  const tag = randomUUID().slice(0, 8);
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  try {
    const payload = (round: number, i: number): CallbackPayload => ({
      userId: `bench-${tag}-${round}-${i}`,
      verifierDid: `did:air:bench-verifier-${tag}`,
      schemaId: 'kyc-basic',
    });
    // The platform's side: node:http with keep-alive (lighter than fetch, so the load generator,
    // which shares this process and its cores, costs the measured side as little as possible).
    const deliver = (p: CallbackPayload) =>
      new Promise<void>((resolve, reject) => {
        const { body, headers } = signedCallback(p);
        const req = request(`${api.url}/v1/cak/callbacks`, { method: 'POST', headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (res.statusCode !== 200) return reject(new Error(`callback answered ${res.statusCode}`));
            started.push((JSON.parse(Buffer.concat(chunks).toString()) as { workflowId: string }).workflowId);
            resolve();
          });
        });
        req.on('error', reject);
        req.end(body);
      });
    const bareStart = async (workflowId: string, p: CallbackPayload) => {
      const input: AuthorizationInput = {
        ...p,
        authorizationId: workflowId,
        receivedAt: new Date().toISOString(),
        deliveryProof: '',
        redriveWindowMs: 1,
      };
      try {
        await client.workflow.start(
          'authorizationWorkflow',
          authorizationStartOptions(workflowId, baselineQueue, input),
        );
        started.push(workflowId);
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
    };

    await deliver(payload(-1, 0)); // warm-up: connections, indexes
    await bareStart(`bench-bare-${tag}-warm`, payload(-1, 1));

    const uniqueSubject = new Side();
    const uniqueBaseline = new Side();
    const dupSubject = new Side();
    const dupBaseline = new Side();
    // Short rounds, alternating which side goes first, so load from neighbours (and a server that
    // grows as runs pile up) falls on both sides alike; the median round decides the rate.
    for (let round = 0; round < ROUNDS; round += 1) {
      const bareId = (i: number) => `bench-bare-${tag}-${round}-${i}`;
      const bare = () => measure(PER_ROUND, (i) => bareStart(bareId(i), payload(round, i)));
      const callbacks = () => measure(PER_ROUND, (i) => deliver(payload(round, i)));
      if (round % 2 === 0) {
        uniqueBaseline.add(await bare());
        uniqueSubject.add(await callbacks());
        dupBaseline.add(await bare());
        dupSubject.add(await callbacks());
      } else {
        uniqueSubject.add(await callbacks());
        uniqueBaseline.add(await bare());
        dupSubject.add(await callbacks());
        dupBaseline.add(await bare());
      }
    }
    return [
      ...results('unique', uniqueSubject.summary(), uniqueBaseline.summary()),
      ...results('duplicate', dupSubject.summary(), dupBaseline.summary()),
    ];
  } finally {
    // nothing polls these task queues: end every run we started so none lingers on the server
    const unique = [...new Set(started)];
    for (let i = 0; i < unique.length; i += 32) {
      await Promise.all(
        unique.slice(i, i + 32).map((id) =>
          client.workflow
            .getHandle(id)
            .terminate('benchmark cleanup')
            .catch(() => undefined),
        ),
      );
    }
    agent.destroy();
    await api.close();
    await client.connection.close();
    await database.db.dropDatabase().catch(() => undefined);
    await database.close();
  }
}
