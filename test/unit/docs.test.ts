import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError, configSchema, loadConfig } from '../../src/config';

const readme = readFileSync('README.md', 'utf8');

function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`## ${heading}`);
  if (start < 0) throw new Error(`README has no "## ${heading}" section`);
  const end = markdown.indexOf('\n## ', start + 3);
  return markdown.slice(start, end < 0 ? undefined : end);
}

describe('README', () => {
  it('has a Quick start of exactly two command lines: run the system, then run the tests', () => {
    const block = /```sh\n([\s\S]*?)```/.exec(section(readme, 'Quick start'))?.[1] ?? '';
    expect(block.trim().split('\n')).toEqual(['npm ci && npm start', 'npm test']);
  });

  it('documents every configuration variable, and no other', () => {
    const table = section(readme, 'Configuration');
    const documented = [...table.matchAll(/^\|\s*`([A-Z0-9_]+)`\s*\|/gm)].map((m) => m[1]);
    expect([...documented].sort()).toEqual(Object.keys(configSchema.shape).sort());
  });

  it('.env.example lists every configuration variable', () => {
    const example = readFileSync('.env.example', 'utf8');
    const listed = new Set([...example.matchAll(/^#?\s*([A-Z0-9_]+)=/gm)].map((m) => m[1]));
    expect(Object.keys(configSchema.shape).filter((name) => !listed.has(name))).toEqual([]);
  });
});

interface ComposeService {
  image?: string;
  build?: unknown;
  ports?: string[];
  healthcheck?: { test?: unknown };
  restart?: string;
  environment?: Record<string, string>;
}

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  const services = compose.services;
  const deployment = section(readme, 'Deploying with docker-compose');

  it('has every service the README names', () => {
    const named = [...deployment.matchAll(/`([a-z][a-z-]+)`/g)].map((m) => m[1]);
    const expected = [
      'postgresql',
      'temporal',
      'temporal-search-attributes',
      'temporal-ui',
      'mongodb',
      'api',
      'worker',
    ];
    for (const name of expected) {
      expect(named).toContain(name);
      expect(services).toHaveProperty(name);
    }
  });

  it('gives every long-running service a health check', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.restart === 'no') continue; // one-shot jobs
      expect({ name, test: service.healthcheck?.test }).toEqual({ name, test: expect.anything() });
    }
  });

  it('publishes only the API and the Web UI, on loopback by default', () => {
    const published = Object.entries(services)
      .filter(([, s]) => (s.ports ?? []).length > 0)
      .map(([name]) => name)
      .sort();
    expect(published).toEqual(['api', 'temporal-ui']);
    for (const name of published) {
      for (const port of services[name]!.ports!) expect(port).toMatch(/^\$\{[A-Z_]+:-127\.0\.0\.1:\d+\}:\d+$/);
    }
  });

  it('runs the api and worker from the same image with Temporal, MongoDB and production settings', () => {
    for (const name of ['api', 'worker']) {
      const env = services[name]!.environment!;
      expect(services[name]!.image).toBe(services.api!.image);
      expect(env.NODE_ENV).toBe('production');
      expect(env.TEMPORAL_ADDRESS).toBe('temporal:7233');
      expect(env.MONGODB_URI).toMatch(/^mongodb:\/\/mongodb:27017\/\?replicaSet=rs0$/);
    }
  });

  it('passes every setting production requires to the api and the worker', () => {
    let required: string[] = [];
    try {
      loadConfig({ NODE_ENV: 'production' });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      required = err.issues.map((issue) => issue.variable);
    }
    expect(required.length).toBeGreaterThan(0);
    for (const name of ['api', 'worker']) {
      expect(required.filter((variable) => !(variable in services[name]!.environment!))).toEqual([]);
    }
  });

  it('registers every search attribute the workflows use', () => {
    const job = JSON.stringify(services['temporal-search-attributes']);
    for (const attribute of ['CakUserId', 'CakSchemaId', 'CakVerifierDid', 'CakIssuerDid'])
      expect(job).toContain(attribute);
  });
});
