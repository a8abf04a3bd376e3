import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, type PageGlobals } from '../support/chromium';
import { startTemporal, stopService, type Paths } from '../../scripts/lib/local-services';
import { startApi, type ApiHandle } from '../../src/api/server';
import { DEV_CODEC_AUTH_TOKEN } from '../../src/config';
import { freePort } from '../support/ports';
import { testConfig, uniqueId } from '../support/temporal';
import { API_KEY_HEADER, markedPng, waitForIssuance } from './issuance-harness';
import { startSystem, type System } from '../support/system';

/**
 * The operator console: the real Temporal Web UI (served by a dev server of this test's own, whose
 * codec endpoint is our API) in headless Chromium. An operator signs in to the codec endpoint, finds
 * a run by CakUserId, and reads its decoded input; Temporal itself holds only ciphertext.
 */
const ARTIFACT = resolve('test/artifacts/webui-decoded-input.png');
const SEARCH_ARTIFACT = resolve('test/artifacts/webui-search-by-user.png');
if (!existsSync(CHROMIUM)) {
  console.warn(`Web UI test skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH).`);
}
type Link = { getAttribute(name: string): string | null };

const describeWithChromium = existsSync(CHROMIUM) ? describe : describe.skip;

describeWithChromium('Temporal Web UI with our codec endpoint (headless Chromium)', () => {
  let paths: Paths;
  let system: System;
  let api: ApiHandle;
  let browser: Browser;
  let uiUrl: string;

  beforeAll(async () => {
    paths = { dataDir: mkdtempSync(join(tmpdir(), 'cak-webui-')), toolsDir: resolve(testConfig().CAK_TOOLS_DIR) };
    const [temporalPort, uiPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    uiUrl = `http://127.0.0.1:${uiPort}`;
    await startTemporal(
      paths,
      { port: temporalPort, uiPort, namespace: 'default', codecEndpoint: `http://127.0.0.1:${apiPort}/codec` },
      () => undefined,
    );
    const temporalAddress = `127.0.0.1:${temporalPort}`;
    system = await startSystem({ env: { TEMPORAL_ADDRESS: temporalAddress } });
    api = await startApi(
      testConfig({
        TEMPORAL_ADDRESS: temporalAddress,
        API_PORT: String(apiPort),
        MONGODB_DB: system.config.MONGODB_DB,
        CODEC_ALLOWED_ORIGINS: uiUrl,
      }),
    );
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await system?.close();
    if (paths) {
      await stopService(paths, 'temporal');
      rmSync(paths.dataDir, { recursive: true, force: true });
    }
  });

  it('finds a run by CakUserId and shows its decoded input to a signed-in operator', async () => {
    const userId = uniqueId('webui-user');
    const response = await fetch(`${system.apiUrl}/v1/issuances`, {
      method: 'POST',
      headers: { ...API_KEY_HEADER, 'content-type': 'application/json', 'idempotency-key': uniqueId('idem') },
      body: JSON.stringify({
        userId,
        issuerDid: 'did:air:id:cak-dev-issuer',
        credentialId: 'prog-kyc-basic',
        schemaId: 'kyc-basic',
        credentialSubject: { kycLevel: 1 },
        fields: { fullName: 'Web UI Person' },
        files: [{ kind: 'face-photo', contentType: 'image/png', data: markedPng('webui', 4096).toString('base64') }],
      }),
    });
    const accepted = (await response.json()) as { issuanceId: string };
    expect({ status: response.status, body: accepted }).toEqual({ status: 202, body: expect.anything() });
    const { issuanceId } = accepted;
    expect((await waitForIssuance(system, issuanceId)).status).toBe('completed');

    const page = await browser.newPage({ viewport: { width: 1600, height: 1200 } });
    mkdirSync(resolve('test/artifacts'), { recursive: true });
    // 1. Point the Web UI's codec calls at our endpoint with credentials (cookies) included.
    await page.goto(uiUrl);
    await page.evaluate((endpoint) => {
      const { localStorage } = globalThis as unknown as PageGlobals;
      localStorage.setItem('endpoint', JSON.stringify(endpoint));
      localStorage.setItem('includeCredentials', 'true');
      localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
    }, `${api.url}/codec`);

    // 2. Search by user id and open the run.
    const query = encodeURIComponent(`CakUserId="${userId}"`);
    await page.goto(`${uiUrl}/namespaces/default/workflows?query=${query}`);
    const runLink = page.locator('a[href*="/namespaces/default/workflows/issuance-"]');
    await runLink.first().waitFor({ timeout: 60_000 });
    const hrefs: string[] = await runLink.evaluateAll((links: unknown[]) =>
      links.map((a) => (a as Link).getAttribute('href') ?? ''),
    );
    const runs = new Set(hrefs.map((href) => /\/workflows\/([^/?]+)/.exec(href)?.[1]));
    expect(runs.size).toBe(1); // exactly this user's run, however many links its row has
    await page.screenshot({ path: SEARCH_ARTIFACT, fullPage: true });
    await runLink.first().click();
    await page.waitForURL(/\/workflows\/issuance-[^/]+\/[^/]+/);
    const runUrl = page.url();

    // 3. Not signed in: the codec answers 401, the UI says so and cannot show the input.
    const pageSays = (text: string) => (globalThis as unknown as PageGlobals).document.body.innerText.includes(text);
    await page.waitForFunction(pageSays, 'Codec Server could not connect', {
      timeout: 60_000,
    });
    expect(await page.locator('body').innerText()).not.toContain('prog-kyc-basic');

    // 4. Sign in to the codec endpoint (an HttpOnly session cookie for /codec), then reopen the run.
    await page.goto(`${api.url}/codec/session`);
    await page.fill('#token', DEV_CODEC_AUTH_TOKEN);
    await page.click('#sign-in');
    await page.waitForSelector('#signed-in');
    await page.goto(runUrl);

    // 5. The decoded input names the program and schema (neither is a search attribute, so only
    //    the codec could have produced them) and no encrypted payload is left on screen.
    await page.getByText('prog-kyc-basic').first().waitFor({ timeout: 60_000 });
    const text = await page.locator('body').innerText();
    expect(text).toContain(userId);
    expect(text).toContain('"schemaId": "kyc-basic"');
    expect(text).not.toContain('Codec Server could not connect');

    await page.screenshot({ path: ARTIFACT, fullPage: true });
    expect(existsSync(ARTIFACT)).toBe(true);
  }, 180_000);
});
