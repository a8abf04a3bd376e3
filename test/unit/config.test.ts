import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  ConfigError,
  DEV_ADMIN_TOKEN,
  DEV_API_KEY,
  DEV_CALLBACK_SECRET,
  DEV_CODEC_AUTH_TOKEN,
  DEV_ISSUER_DID,
  loadConfig,
} from '../../src/config';
import { devPartnerJwk } from '../../src/platform/partner-keys';

function errorOf(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected loadConfig to throw');
}

describe('loadConfig', () => {
  it('gives local defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config.TEMPORAL_ADDRESS).toBe('127.0.0.1:7233');
    expect(config.MONGODB_URI).toBe('mongodb://127.0.0.1:27017/');
    expect(config.API_PORT).toBe(3000);
    expect(config.explicit).toEqual({ temporal: false, mongo: false, platform: false });
  });

  it('derives local addresses from the local port settings', () => {
    const config = loadConfig({ LOCAL_TEMPORAL_PORT: '7300', LOCAL_MONGO_PORT: '27100' });
    expect(config.TEMPORAL_ADDRESS).toBe('127.0.0.1:7300');
    expect(config.MONGODB_URI).toBe('mongodb://127.0.0.1:27100/');
  });

  it('uses given addresses as is and remembers they were given', () => {
    const config = loadConfig({ TEMPORAL_ADDRESS: 'temporal:7233', MONGODB_URI: 'mongodb://db:27017/?replicaSet=rs0' });
    expect(config.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(config.explicit.temporal).toBe(true);
    expect(config.explicit.mongo).toBe(true);
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ API_PORT: '' }).API_PORT).toBe(3000);
  });

  it.each([
    ['API_PORT', 'eighty'],
    ['API_PORT', '70000'],
    ['TEMPORAL_ADDRESS', 'no-port-here'],
    ['MONGODB_URI', 'postgres://x'],
    ['LOG_LEVEL', 'loud'],
    ['NODE_ENV', 'staging'],
    ['EMULATOR_ENABLED', 'yes'],
    ['MONGODB_DB', 'bad.name'],
  ])('names %s when its value (%s) is wrong', (variable, value) => {
    const error = errorOf({ [variable]: value });
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.issues.map((i) => i.variable)).toEqual([variable]);
    expect(error.message).toContain(variable);
  });

  it('names every bad variable at once', () => {
    const error = errorOf({ API_PORT: 'x', EMULATOR_PORT: '-1' });
    expect(error.issues.map((i) => i.variable).sort()).toEqual(['API_PORT', 'EMULATOR_PORT']);
  });
});

describe('loadConfig in production', () => {
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  const keyring = (kid: string) => `${kid}:${randomBytes(32).toString('base64')}`;
  const whsec = () => `whsec_${randomBytes(24).toString('base64')}`;
  const bytesOf = (spec: string) => spec.split(',')[0]!.split(':')[1]!;
  const did = 'did:air:id:acme-issuer';
  const partnerId = 'acme-partner';
  // Everything a deployment must set itself, none of it a development value.
  const valid: NodeJS.ProcessEnv = {
    NODE_ENV: 'production',
    AIR_PLATFORM_URL: 'https://air.example',
    EMULATOR_ENABLED: 'false',
    API_KEYS: `acme:${sha256('acme-api-key')}`,
    ISSUER_DIDS: did,
    API_CLIENT_SCOPES: `acme=${did}`,
    PARTNER_ID: partnerId,
    PARTNER_SIGNING_KEYS: JSON.stringify([
      { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'acme-1' },
    ]),
    ID_HMAC_SECRET: randomBytes(32).toString('hex'),
    CALLBACK_SECRETS: whsec(),
    ADMIN_TOKENS: `ops:${sha256('acme-admin-token')}`,
    SIGNED_URL_SECRET: randomBytes(32).toString('hex'),
    NOTIFY_SECRET: whsec(),
    CAK_MANAGED_KEYS: keyring('managed-1'),
    CAK_CODEC_KEYS: keyring('codec-1'),
    CAK_AUDIT_KEYS: keyring('audit-1'),
    CODEC_AUTH_TOKENS: randomBytes(24).toString('hex'),
  };
  // The development defaults, as a local run gets them.
  const dev = loadConfig({});

  it('loads a complete production environment', () => {
    const config = loadConfig(valid);
    expect(config.NODE_ENV).toBe('production');
    expect(config.EMULATOR_ENABLED).toBe(false);
    expect(config.explicit.platform).toBe(true);
  });

  it.each([
    'API_KEYS',
    'ISSUER_DIDS',
    'API_CLIENT_SCOPES',
    'PARTNER_ID',
    'PARTNER_SIGNING_KEYS',
    'ID_HMAC_SECRET',
    'CALLBACK_SECRETS',
    'ADMIN_TOKENS',
    'SIGNED_URL_SECRET',
    'NOTIFY_SECRET',
    'CAK_MANAGED_KEYS',
    'CAK_CODEC_KEYS',
    'CAK_AUDIT_KEYS',
    'CODEC_AUTH_TOKENS',
    'AIR_PLATFORM_URL',
  ])('requires %s', (variable) => {
    const error = errorOf({ ...valid, [variable]: undefined });
    expect(error.issues).toContainEqual({ variable, message: 'required in production' });
    expect(error.message).toContain(variable);
  });

  it('requires PLATFORM_JWKS_URL instead of CALLBACK_SECRETS for jws-es256 callbacks', () => {
    const jws = { ...valid, CALLBACK_SIGNATURE_SCHEME: 'jws-es256', CALLBACK_SECRETS: undefined };
    expect(errorOf(jws).issues).toEqual([{ variable: 'PLATFORM_JWKS_URL', message: 'required in production' }]);
    expect(loadConfig({ ...jws, PLATFORM_JWKS_URL: 'https://air.example/jwks.json' }).NODE_ENV).toBe('production');
  });

  it.each([
    ['EMULATOR_ENABLED', 'left at its default (on)', { EMULATOR_ENABLED: undefined }],
    ['EMULATOR_ENABLED', 'true', { EMULATOR_ENABLED: 'true' }],
    ['API_KEYS', 'the dev default', { API_KEYS: dev.API_KEYS }],
    ['API_KEYS', 'the dev key among others', { API_KEYS: `${valid.API_KEYS},acme2:${sha256(DEV_API_KEY)}` }],
    ['ADMIN_TOKENS', 'the dev default', { ADMIN_TOKENS: dev.ADMIN_TOKENS }],
    ['ADMIN_TOKENS', 'the dev token under another name', { ADMIN_TOKENS: `ops:${sha256(DEV_ADMIN_TOKEN)}` }],
    ['ID_HMAC_SECRET', 'the dev default', { ID_HMAC_SECRET: dev.ID_HMAC_SECRET }],
    ['CALLBACK_SECRETS', 'the dev secret among others', { CALLBACK_SECRETS: `${whsec()} ${DEV_CALLBACK_SECRET}` }],
    ['SIGNED_URL_SECRET', 'the dev default', { SIGNED_URL_SECRET: dev.SIGNED_URL_SECRET }],
    ['NOTIFY_SECRET', 'the dev default', { NOTIFY_SECRET: dev.NOTIFY_SECRET }],
    [
      'CODEC_AUTH_TOKENS',
      'the dev token among others',
      { CODEC_AUTH_TOKENS: `${valid.CODEC_AUTH_TOKENS},${DEV_CODEC_AUTH_TOKEN}` },
    ],
    ['EMULATOR_MASTER_SECRET', 'the dev default', { EMULATOR_MASTER_SECRET: dev.EMULATOR_MASTER_SECRET }],
    ['ISSUER_DIDS', 'the dev DID among others', { ISSUER_DIDS: `${did},${DEV_ISSUER_DID}` }],
    [
      'API_CLIENT_SCOPES',
      'the dev grant among others',
      {
        API_KEYS: `${valid.API_KEYS},dev:${sha256('another-key')}`,
        ISSUER_DIDS: `${did},${DEV_ISSUER_DID}`,
        API_CLIENT_SCOPES: `acme=${did},dev=${DEV_ISSUER_DID}`,
      },
    ],
    ['PARTNER_ID', 'the dev default', { PARTNER_ID: dev.PARTNER_ID }],
    [
      'PARTNER_SIGNING_KEYS',
      'the dev key of PARTNER_ID',
      { PARTNER_SIGNING_KEYS: JSON.stringify([devPartnerJwk(partnerId)]) },
    ],
    [
      'PARTNER_SIGNING_KEYS',
      'the dev key of PARTNER_ID under a fresh kid',
      { PARTNER_SIGNING_KEYS: JSON.stringify([{ ...devPartnerJwk(partnerId), kid: 'fresh' }]) },
    ],
    [
      'PARTNER_SIGNING_KEYS',
      'the dev key of the dev partner, second',
      {
        PARTNER_SIGNING_KEYS: JSON.stringify([
          ...JSON.parse(valid.PARTNER_SIGNING_KEYS!),
          devPartnerJwk(dev.PARTNER_ID),
        ]),
      },
    ],
    ['CAK_MANAGED_KEYS', 'the dev default', { CAK_MANAGED_KEYS: dev.CAK_MANAGED_KEYS }],
    ['CAK_MANAGED_KEYS', 'a dev-insecure kid', { CAK_MANAGED_KEYS: keyring('dev-insecure-2') }],
    ['CAK_CODEC_KEYS', 'the dev default', { CAK_CODEC_KEYS: dev.CAK_CODEC_KEYS }],
    ['CAK_AUDIT_KEYS', 'the dev default', { CAK_AUDIT_KEYS: dev.CAK_AUDIT_KEYS }],
  ] as [string, string, NodeJS.ProcessEnv][])('refuses %s: %s', (variable, _what, overrides) => {
    const error = errorOf({ ...valid, ...overrides });
    const variables = error.issues.map((i) => i.variable);
    expect(variables).toContain(variable);
    // one issue per variable, and only the variables this case changed
    expect(new Set(variables).size).toBe(variables.length);
    expect(variables.every((v) => v in overrides)).toBe(true);
    expect(error.message).toContain(variable);
  });

  it.each(['CAK_MANAGED_KEYS', 'CAK_CODEC_KEYS', 'CAK_AUDIT_KEYS'] as const)(
    'refuses the development key bytes in %s under a fresh kid, in any position',
    (variable) => {
      for (const devSpec of [dev.CAK_MANAGED_KEYS, dev.CAK_CODEC_KEYS, dev.CAK_AUDIT_KEYS]) {
        for (const spec of [`prod-1:${bytesOf(devSpec)}`, `${keyring('prod-2')},prod-1:${bytesOf(devSpec)}`]) {
          expect(errorOf({ ...valid, [variable]: spec }).issues.map((i) => i.variable)).toEqual([variable]);
        }
      }
    },
  );
});
