import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VERIFIER_TOKEN_AUDIENCE as API_AUDIENCE } from '../../src/api/verifier';
import { EXIT, EXIT_CODE_TABLE } from '../../src/cli/exit-codes';
import { VERIFIER_TOKEN_AUDIENCE } from '../../src/cli/verifier-keys';
import { eciesEncrypt } from '../../src/crypto/ecies';
import { generateKeyPair, parsePublicKey } from '../../src/crypto/keys';
import { freePort } from '../support/ports';
import { runCak } from '../support/cli';
import { testConfig, uniqueId } from '../support/temporal';

jest.setTimeout(180_000);

/**
 * The exit codes: the table the CLI uses (src/cli/exit-codes.ts) is the one docs/cli.md documents
 * and `--help` prints, and each code is what the commands return, run from outside the project. The
 * Verifier-side codes run against a stand-in API here (the real one: cli-verifier.test.ts).
 */

function docsTable(): Map<number, string> {
  const docs = readFileSync(join(__dirname, '..', '..', 'docs', 'cli.md'), 'utf8');
  const start = docs.indexOf('## Exit codes');
  expect(start).toBeGreaterThanOrEqual(0);
  const end = docs.indexOf('\n## ', start + 3);
  const section = docs.slice(start, end < 0 ? undefined : end);
  return new Map([...section.matchAll(/^\|\s*`?(\d+)`?\s*\|\s*(.+?)\s*\|$/gm)].map((m) => [Number(m[1]), m[2]!]));
}

describe('cak exit codes', () => {
  it('docs/cli.md documents exactly the codes the CLI uses, and --help prints them all', async () => {
    const documented = docsTable();
    expect([...documented.keys()].sort()).toEqual(Object.values(EXIT).sort());
    expect(EXIT_CODE_TABLE.map((row) => row.code).sort()).toEqual(Object.values(EXIT).sort());
    const help = await runCak(['--help']);
    expect(help.status).toBe(EXIT.OK);
    for (const row of EXIT_CODE_TABLE) expect(help.stdout).toContain(`  ${row.code}  ${row.meaning}`);
    // every subcommand's help carries the table too
    const sub = await runCak(['verifier', 'fetch', '--help']);
    expect(sub.status).toBe(EXIT.OK);
    expect(sub.stdout).toContain('Exit codes:');
    expect(sub.stdout).toContain('register-key');
  });

  it('2 for usage errors: no command, an unknown command or option, a missing or invalid value, a bad key', async () => {
    const cases: [string[], RegExp][] = [
      [[], /Usage: cak/],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['issuances', 'list', '--bogus'], /unknown option '--bogus'/],
      [['issuances', 'list', '--limit', '0'], /expected an integer from 1 to 1000/],
      [['issuances', 'list', '--state', 'lost'], /Allowed choices are/],
      [['verifier', 'fetch', '--verifier-did', 'did:air:id:v'], /required option/],
      [['authorizations', 'redrive'], /name one authorization id/],
      [['verifier', 'register-key', '--verifier-did', 'not-a-did', '--verifier-key', 'none.jwk'], /--verifier-did/],
      [
        ['verifier', 'token', '--verifier-did', 'did:air:id:v', '--verifier-key', 'none.jwk'],
        /--verifier-key none\.jwk: cannot read \/\S+\/none\.jwk \(ENOENT\)/,
      ],
      [['decrypt', '--private-key', 'not a key!'], /KEY_ENCODING/],
    ];
    for (const [args, stderr] of cases) {
      const out = await runCak(args);
      expect({ args, status: out.status }).toEqual({ args, status: EXIT.USAGE });
      expect(out.stderr).toMatch(stderr);
    }
  });

  it('1 when it fails: an invalid configuration (named), the API unreachable', async () => {
    const config = await runCak(['issuances', 'list'], { LOG_LEVEL: 'chatty' });
    expect(config.status).toBe(EXIT.ERROR);
    expect(config.stderr).toMatch(/LOG_LEVEL/);

    const dir = mkdtempSync(join(tmpdir(), 'cak-exit-'));
    try {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      writeFileSync(join(dir, 'verifier.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }));
      writeFileSync(join(dir, 'cak.hex'), generateKeyPair('secp256r1').privateKey.toString('hex'));
      const closed = `http://127.0.0.1:${await freePort()}`;
      const args = ['verifier', 'fetch', '--verifier-did', 'did:air:id:v', '--verifier-key', 'verifier.pem'];
      const out = await runCak(
        [...args, '--user', 'u', '--schema', 's', '--cak-key', 'cak.hex', '--out', 'out', '--api', closed],
        {},
        { cwd: dir },
      );
      expect(out.status).toBe(EXIT.ERROR);
      expect(out.stderr).toMatch(/cannot reach .*ECONNREFUSED/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('4 when not found: issuances status of an unknown issuance', async () => {
    const config = testConfig();
    const out = await runCak(['issuances', 'status', 'iss_nope'], {
      MONGODB_URI: config.MONGODB_URI,
      MONGODB_DB: uniqueId('t_cli_exit').replace(/-/g, '_').slice(0, 40),
    });
    expect(out.status).toBe(EXIT.REFUSED);
    expect(out.stderr).toContain('iss_nope: no such issuance');
  });

  describe('verifier fetch against a stand-in API: 4 refused, 3 a package unlike its manifest, 0 checked', () => {
    let server: Server;
    let api: string;
    let dir: string;
    const cak = generateKeyPair('secp256r1');
    const plain = Buffer.from('{"fullName":"Ada"}');
    const pkg = eciesEncrypt(parsePublicKey(cak.publicKey.toString('hex'), 'secp256r1'), plain);
    /** what the stand-in says next: a refusal, or a manifest whose one item has this size and sha256 */
    let answer: { refuse: string } | { size?: number; sha256?: string } = { refuse: 'AUTHORIZATION_REQUIRED' };
    const seen: { authorization?: string }[] = [];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'cak-exit-fetch-'));
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      writeFileSync(join(dir, 'verifier.jwk'), JSON.stringify({ ...privateKey.export({ format: 'jwk' }), kid: 'v1' }));
      writeFileSync(join(dir, 'cak.json'), JSON.stringify({ cakPrivateKey: cak.privateKey.toString('hex') }));
      server = createServer((req, res) => {
        if (req.url?.startsWith('/v1/verifier/data')) {
          seen.push({ authorization: req.headers.authorization });
          if ('refuse' in answer) {
            res.writeHead(403, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { code: answer.refuse, message: 'no active authorization' } }));
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              authorizationId: 'auth_x',
              userId: 'u',
              schemaId: 's',
              recordId: 'rec_x',
              version: 1,
              expiresAt: new Date(Date.now() + 60_000).toISOString(),
              items: [
                {
                  itemId: 'fields',
                  kind: 'fields',
                  contentType: 'application/json',
                  curve: 'secp256r1',
                  url: '/p/1',
                  ...answer,
                },
              ],
            }),
          );
          return;
        }
        if (req.url === '/p/1') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(pkg);
          return;
        }
        res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      api = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    });

    const fetchTo = (out: string, extra: string[] = []) =>
      runCak(
        [
          'verifier',
          'fetch',
          '--verifier-did',
          'did:air:id:v',
          '--verifier-key',
          'verifier.jwk',
          '--user',
          'u',
          '--schema',
          's',
          '--cak-key',
          'cak.json',
          '--out',
          out,
          '--api',
          api,
          ...extra,
        ],
        {},
        { cwd: dir },
      );

    it('4 with the API error code when access is refused; nothing is written', async () => {
      answer = { refuse: 'AUTHORIZATION_REQUIRED' };
      const out = await fetchTo('refused');
      expect(out.status).toBe(EXIT.REFUSED);
      expect(out.stderr).toMatch(/403 AUTHORIZATION_REQUIRED: no active authorization/);
      expect(readdirSync(dir)).not.toContain('refused');
      // the JWT it sent: ES256 with the JWK's kid, iss = sub = the DID, aud cak-issuer, 5 minutes
      const [header, claims] = seen
        .at(-1)!
        .authorization!.replace(/^Bearer /, '')
        .split('.')
        .slice(0, 2)
        .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>);
      expect(header).toEqual({ alg: 'ES256', typ: 'JWT', kid: 'v1' });
      expect(VERIFIER_TOKEN_AUDIENCE).toBe(API_AUDIENCE);
      expect(claims).toMatchObject({ iss: 'did:air:id:v', sub: 'did:air:id:v', aud: API_AUDIENCE });
      expect((claims!.exp as number) - (claims!.iat as number)).toBe(300);
    });

    it('3 when a package differs from the size or sha256 in the manifest; the file is not written', async () => {
      answer = { sha256: '0'.repeat(64) };
      const hash = await fetchTo('bad-hash');
      expect(hash.status).toBe(EXIT.CHECK_FAILED);
      expect(hash.stderr).toContain('PACKAGE_SHA256_MISMATCH');
      expect(readdirSync(join(dir, 'bad-hash'))).toEqual([]);
      answer = { size: pkg.length + 1 };
      const size = await fetchTo('bad-size');
      expect(size.status).toBe(EXIT.CHECK_FAILED);
      expect(size.stderr).toContain('PACKAGE_SIZE_MISMATCH');
    });

    it('0 when the package matches: the decrypted file, mode 600, and a JSON report', async () => {
      answer = { size: pkg.length, sha256: createHash('sha256').update(pkg).digest('hex') };
      const ok = await fetchTo('good', ['--json']);
      expect(ok).toMatchObject({ status: EXIT.OK, stderr: '' });
      const report = JSON.parse(ok.stdout) as { files: { path: string; checked: boolean; bytes: number }[] };
      expect(report.files).toEqual([
        expect.objectContaining({ path: join(dir, 'good', 'fields.json'), checked: true, bytes: plain.length }),
      ]);
      expect(readFileSync(join(dir, 'good', 'fields.json'))).toEqual(plain);
      expect(statSync(join(dir, 'good', 'fields.json')).mode & 0o777).toBe(0o600);
    });
  });
});
