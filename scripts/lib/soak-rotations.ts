/**
 * Mid-run key rotations for the soak (`scripts/soak.ts`), each following its section of
 * docs/operations.md "Rotate keys and secrets": add the new key as accepted but not active, deploy,
 * switch, then remove the old one when the runbook allows it within a soak. "Deploy" is a rolling
 * restart of the two API instances (and a graceful worker restart when the worker reads the
 * variable), so no request is lost. Waits the runbook measures in hours are compressed; the load
 * keeps running throughout, and any refused request is a violation the load itself records.
 */
import { generateKeyringEntry, generateWebhookSecret, type RewrapReport } from '../../src/operations/keys';
import { devPartnerJwk, loadPartnerKeys } from '../../src/platform/partner-keys';

export type RotationKind = 'codec' | 'managed' | 'callback' | 'partner';
/** In this order across the run: managed first, while the fewest packages are stored (see rotateManaged). */
export const ROTATIONS: readonly RotationKind[] = ['managed', 'codec', 'callback', 'partner'];

export interface Deployment {
  /** the environment every process the soak (re)starts gets: edited here, then deployed */
  env: NodeJS.ProcessEnv;
  /** rolling restart of the API instances; with `worker`, a graceful worker restart alongside */
  deploy(targets: 'api' | 'api+worker', why: string): Promise<void>;
  /** the platform's side of a callback secret switch: every attempt from now on is signed with it */
  signCallbacksWith(secret: string): void;
  /** runs `cak <args>` with `env`; its stdout */
  cli(args: string[]): Promise<{ code: number | null; stdout: string }>;
  /** work that goes on while the run continues; awaited before the checks */
  background(task: Promise<unknown>): void;
  say(line: string): void;
  sleep(ms: number): Promise<void>;
  violation(text: string): void;
}

/** Callback secrets: how long the soak watches for 401s between the switch and removing the old one. */
const CALLBACK_WATCH_MS = 20_000;
/** Partner keys: stands for the runbook's hour of platform JWKS caching (the emulator refetches on an unknown kid). */
const PARTNER_PUBLISH_WAIT_MS = 5_000;

const kidOf = (entry: string) => entry.slice(0, entry.indexOf(':'));

/** Codec keyring: append, deploy; move to the front, deploy. The old key stays (runs open for their access window still need it). */
async function rotateCodec(d: Deployment): Promise<void> {
  const old = d.env.CAK_CODEC_KEYS!;
  const entry = generateKeyringEntry();
  d.env.CAK_CODEC_KEYS = `${old},${entry}`;
  await d.deploy('api+worker', `codec: append ${kidOf(entry)}`);
  d.env.CAK_CODEC_KEYS = `${entry},${old}`;
  await d.deploy('api+worker', `codec: ${kidOf(entry)} active`);
}

/**
 * Managed keyring: append, deploy; front, deploy; `cak keys rewrap`. The old key stays (staging TTL,
 * pending packages). The rewrap goes on in the background while the run continues: on FerretDB it
 * costs seconds per package once the database holds a few hundred (it reads and writes each one and
 * its record version under load).
 */
async function rotateManaged(d: Deployment): Promise<void> {
  const old = d.env.CAK_MANAGED_KEYS!;
  const entry = generateKeyringEntry();
  d.env.CAK_MANAGED_KEYS = `${old},${entry}`;
  await d.deploy('api+worker', `managed: append ${kidOf(entry)}`);
  d.env.CAK_MANAGED_KEYS = `${entry},${old}`;
  await d.deploy('api+worker', `managed: ${kidOf(entry)} active`);
  d.say('managed: cak keys rewrap started');
  d.background(rewrap(d));
}

/**
 * `cak keys rewrap --json`. Exit 1 (interrupted: the database restarted under it) runs it again, as
 * the runbook says (it is resumable); a failed package (exit 4), or exit 1 five times, is a violation.
 */
export async function rewrap(d: Deployment): Promise<RewrapReport | undefined> {
  for (let attempt = 1; ; attempt += 1) {
    const { code, stdout } = await d.cli(['keys', 'rewrap', '--json']);
    let report: RewrapReport | undefined;
    try {
      report = JSON.parse(stdout) as RewrapReport;
    } catch {
      report = undefined;
    }
    if (code === 0 && report) {
      d.say(
        `rewrap to ${report.activeKeyId}: ${report.rewrapped} rewrapped, ${report.alreadyActive} already, ` +
          `${report.pendingSkipped} pending skipped, ${report.vanished} vanished`,
      );
      return report;
    }
    if (code === 1 && attempt < 5) {
      d.say('cak keys rewrap exited 1 (interrupted); running it again');
      await d.sleep(5_000);
      continue;
    }
    d.violation(`cak keys rewrap exited ${code}${report ? `: ${report.failed.length} packages failed` : ''}`);
    return report;
  }
}

/** Callback secrets: append, deploy the API; the platform signs with the new one; watch; remove the old, deploy. */
async function rotateCallback(d: Deployment): Promise<void> {
  const old = d.env.CALLBACK_SECRETS!;
  const secret = generateWebhookSecret();
  d.env.CALLBACK_SECRETS = `${old},${secret}`;
  await d.deploy('api', 'callback: append a secret');
  d.signCallbacksWith(secret);
  d.say(`callback: the platform signs with the new secret; watching for 401s for ${CALLBACK_WATCH_MS / 1000} s`);
  await d.sleep(CALLBACK_WATCH_MS);
  d.env.CALLBACK_SECRETS = secret;
  await d.deploy('api', 'callback: remove the old secret');
}

/** Partner keys: publish the new key, deploy; wait; make it active, deploy; wait the token TTL; remove the old, deploy. */
async function rotatePartner(d: Deployment, partnerId: string): Promise<void> {
  const keys = JSON.parse(d.env.PARTNER_SIGNING_KEYS!) as ReturnType<typeof devPartnerJwk>[];
  const current = loadPartnerKeys({
    partnerId,
    signingKeys: d.env.PARTNER_SIGNING_KEYS,
    activeKid: d.env.PARTNER_ACTIVE_KID,
  }).active.kid;
  const fresh = devPartnerJwk(partnerId, `soak-${Date.now().toString(36)}`);
  const publish = (list: typeof keys, activeKid: string) => {
    const signingKeys = JSON.stringify(list);
    loadPartnerKeys({ partnerId, signingKeys, activeKid }); // refuse a bad set here, not in a crashing child
    d.env.PARTNER_SIGNING_KEYS = signingKeys;
    d.env.PARTNER_ACTIVE_KID = activeKid;
  };
  publish([...keys, fresh], current);
  await d.deploy('api+worker', `partner: publish ${fresh.kid}`);
  await d.sleep(PARTNER_PUBLISH_WAIT_MS);
  publish([...keys, fresh], fresh.kid);
  await d.deploy('api+worker', `partner: ${fresh.kid} signs`);
  const ttlMs = Number(d.env.PARTNER_TOKEN_TTL_SECONDS ?? 300) * 1000;
  d.say(`partner: waiting ${ttlMs / 1000} s for tokens signed by ${current} to expire`);
  await d.sleep(ttlMs + 2_000);
  publish([fresh], fresh.kid);
  await d.deploy('api+worker', `partner: remove ${current}`);
}

export async function rotate(kind: RotationKind, d: Deployment, partnerId: string): Promise<void> {
  switch (kind) {
    case 'codec':
      return rotateCodec(d);
    case 'managed':
      return rotateManaged(d);
    case 'callback':
      return rotateCallback(d);
    case 'partner':
      return rotatePartner(d, partnerId);
  }
}
