import { createServer, type Server } from 'node:http';
import express, { type Express, type ErrorRequestHandler } from 'express';
import { z } from 'zod';
import { loadConfig, type Config } from '../config';
import { curveSchema, didSchema, identifierSchema } from '../domain/issuance-request';
import type { CakCurve } from '../domain/issuance';
import { listen, ListenError } from '../net/listen';
import { createLogger } from '../observability/logger';
import { parseSecrets } from '../platform/callback-signature';
import { registryOf } from '../resources';
import { deriveCakKeyPair, type CakTriple } from './cak-keys';
import { callbackPlatform, type CallbackPlatformControls, type CallbackPlatformOptions } from './callbacks';
import { PartnerAuthError, partnerVerifier } from './partner-auth';

/**
 * A local stand-in for the AIR Credential platform, the embedded default when AIR_PLATFORM_URL is
 * not set. Never run it in production: it derives CAK key pairs from a local secret.
 *
 *   POST /v1/credentials/issue   issueCredential over HTTP (x-partner-auth, scope "issue") -> {cakPublicKey}
 *   POST /emulator/verifier/cak-private-key   the private half, as the verification SDK would hand
 *                                a consented Verifier (emulator only)
 */

interface EmulatorOptions {
  partnerId: string;
  jwksUrl: string;
  masterSecret: string;
  /** issuance programs: credentialId -> schemaId */
  programs: Record<string, string>;
  /** authorization callbacks: how they are signed (src/emulator/callbacks.ts) */
  callbacks: Pick<CallbackPlatformOptions, 'scheme' | 'secret'>;
}

export interface EmulatorControls {
  registerProgram(credentialId: string, schemaId: string): void;
  /** the private key a consented Verifier would receive from the verification SDK */
  cakPrivateKey(triple: CakTriple, curve: CakCurve): string;
  cakPublicKey(triple: CakTriple, curve: CakCurve): string;
  /** answer the next `count` issue calls with `status` (fault injection for tests) */
  failNextIssues(count: number, status: number): void;
  /** drop the injected faults not answered yet */
  clearFaults(): void;
  /** issue calls answered so far (after authentication) */
  issueCalls(): number;
  /** callback records and the registered callback URL */
  callbacks: CallbackPlatformControls;
}

const issueBody = z.strictObject({
  issuerDid: didSchema,
  credentialId: identifierSchema,
  credentialSubject: z.record(z.string(), z.unknown()),
  curve: curveSchema.default('secp256r1'),
  waitForOnchainCompletion: z.boolean().optional(),
});
const privateKeyBody = z.strictObject({
  userId: identifierSchema,
  issuerDid: didSchema,
  schemaId: identifierSchema,
  curve: curveSchema,
});

function createEmulatorApp(options: EmulatorOptions): { app: Express; controls: EmulatorControls } {
  const programs = new Map(Object.entries(options.programs));
  const verify = partnerVerifier({ partnerId: options.partnerId, jwksUrl: options.jwksUrl });
  const faults: number[] = [];
  let calls = 0;
  const callbacks = callbackPlatform({
    ...options.callbacks,
    verifyPartner: (token, scope) => verify(token, scope),
    cakPrivateKey: (triple, curve) => deriveCakKeyPair(options.masterSecret, triple, curve).privateKey,
  });
  const controls: EmulatorControls = {
    registerProgram: (credentialId, schemaId) => void programs.set(credentialId, schemaId),
    cakPrivateKey: (triple, curve) => deriveCakKeyPair(options.masterSecret, triple, curve).privateKey,
    cakPublicKey: (triple, curve) => deriveCakKeyPair(options.masterSecret, triple, curve).publicKey,
    failNextIssues: (count, status) => faults.push(...Array.from({ length: count }, () => status)),
    clearFaults: () => void faults.splice(0),
    issueCalls: () => calls,
    callbacks: callbacks.controls,
  };

  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '64kb' }));
  const platformError = (res: express.Response, status: number, message: string, code?: string) =>
    res.status(status).json({ error: status, message, ...(code ? { code } : {}) });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', emulator: true });
  });

  app.post('/v1/credentials/issue', async (req, res) => {
    let partner;
    try {
      partner = await verify(req.get('x-partner-auth'), 'issue');
    } catch (err) {
      if (err instanceof PartnerAuthError) return platformError(res, err.status, err.message, err.code);
      throw err;
    }
    calls += 1;
    const fault = faults.shift();
    if (fault !== undefined) return platformError(res, fault, 'injected fault');
    const body = issueBody.safeParse(req.body);
    if (!body.success) return platformError(res, 400, `invalid request: ${body.error.issues[0]?.path.join('.')}`);
    if (!partner.sub) return platformError(res, 401, 'no user session (sub) in the partner token', 'USER_MISMATCH');
    const schemaId = programs.get(body.data.credentialId);
    if (!schemaId) return platformError(res, 404, 'unknown issuer DID or program');
    const triple = { userId: partner.sub, issuerDid: body.data.issuerDid, schemaId };
    return res.json({ success: true, cakPublicKey: controls.cakPublicKey(triple, body.data.curve) });
  });

  app.post('/emulator/verifier/cak-private-key', (req, res) => {
    const body = privateKeyBody.safeParse(req.body);
    if (!body.success) return platformError(res, 400, 'expected {userId, issuerDid, schemaId, curve}');
    const { curve, ...triple } = body.data;
    return res.json({ cakPrivateKey: controls.cakPrivateKey(triple, curve) });
  });

  app.use(callbacks.router);

  const onError: ErrorRequestHandler = (err: { status?: number }, _req, res, _next) => {
    const status = typeof err.status === 'number' && err.status >= 400 && err.status < 500 ? err.status : 500;
    platformError(res, status, status === 500 ? 'internal error' : 'bad request');
  };
  app.use(onError);
  return { app, controls };
}

export interface EmulatorHandle {
  server: Server;
  url: string;
  controls: EmulatorControls;
  close(): Promise<void>;
}

export async function startEmulator(
  config: Config,
  overrides: { port?: number; jwksUrl?: string } = {},
): Promise<EmulatorHandle> {
  const log = createLogger({ level: config.LOG_LEVEL, name: 'emulator' });
  const { app, controls } = createEmulatorApp({
    partnerId: config.PARTNER_ID,
    jwksUrl: overrides.jwksUrl ?? config.EMULATOR_JWKS_URL,
    masterSecret: config.EMULATOR_MASTER_SECRET,
    // the programs of the schema registry, so the emulator and the issuer cannot drift apart
    programs: Object.fromEntries(registryOf(config).programs()),
    callbacks: { scheme: config.CALLBACK_SIGNATURE_SCHEME, secret: parseSecrets(config.CALLBACK_SECRETS)[0]! },
  });
  const server = createServer(app);
  const port = await listen(server, overrides.port ?? config.EMULATOR_PORT, config.EMULATOR_HOST);
  const url = `http://${config.EMULATOR_HOST}:${port}`;
  log.info({ url }, 'AIR platform emulator listening');
  return {
    server,
    url,
    controls,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

if (require.main === module) {
  startEmulator(loadConfig())
    .then((emulator) => {
      const stop = () => void emulator.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    })
    .catch((err: unknown) => {
      const reason = err instanceof ListenError ? err.message : err instanceof Error ? err.stack : String(err);
      process.stderr.write(`emulator failed: ${reason}\n`);
      process.exit(1);
    });
}
