/**
 * `npm run screenshot [-- <Web UI run URL>] [--out <file>]`: opens a run in the Temporal Web UI with
 * Debian's Chromium (playwright-core, no browser download), signed in to our codec endpoint so the
 * run's input shows decoded, and saves a PNG (default docs/images/web-ui-run.png).
 *
 * The run is the URL given, else the first link of the last `npm run demo` (.data/demo/last-run.json:
 * its kyc-basic issuance run). The API must answer for the codec; like the demo, this starts
 * `npm start` when nothing answers the API's /readyz, and stops it afterwards.
 * Chromium: CHROMIUM_PATH, default /usr/bin/chromium (`apt-get install -y chromium`).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, type PageGlobals } from '../test/support/chromium';
import { loadConfig } from '../src/config';
import { DemoError, endpointsOf, ensureSystem } from './demo';

const say = (line: string) => process.stdout.write(`[screenshot] ${line}\n`);

function parseArgs(argv: string[]): { url?: string; out: string } {
  let url: string | undefined;
  let out = 'docs/images/web-ui-run.png';
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (arg === '--out') out = argv[++i] ?? out;
    else if (/^https?:\/\//.test(arg)) url = arg;
    else throw new DemoError(`unexpected argument "${arg}": give a Web UI run URL and/or --out <file>`);
  }
  return { ...(url ? { url } : {}), out: resolve(out) };
}

function lastDemoRun(dataDir: string): string {
  const file = resolve(dataDir, 'demo', 'last-run.json');
  if (!existsSync(file))
    throw new DemoError(`no ${relative(process.cwd(), file)}: run \`npm run demo\` first, or pass a run URL`);
  const { links } = JSON.parse(readFileSync(file, 'utf8')) as { links: { label: string; url: string }[] };
  const link = links.find((l) => l.label.startsWith('issuance')) ?? links[0];
  if (!link) throw new DemoError(`${relative(process.cwd(), file)} lists no run: run \`npm run demo\` again`);
  say(`run: ${link.label} (from the last demo)`);
  return link.url;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const endpoints = endpointsOf(config);
  const args = parseArgs(process.argv.slice(2));
  const runUrl = args.url ?? lastDemoRun(config.CAK_DATA_DIR);
  if (!existsSync(CHROMIUM)) {
    throw new DemoError(`no Chromium at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  }
  const system = await ensureSystem(config, say);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1 });
    // 1. The Web UI calls our codec endpoint with credentials (the session cookie) included.
    await page.goto(endpoints.webUi);
    await page.evaluate((endpoint) => {
      const { localStorage } = globalThis as unknown as PageGlobals;
      localStorage.setItem('endpoint', JSON.stringify(endpoint));
      localStorage.setItem('includeCredentials', 'true');
      localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
    }, `${endpoints.api}/codec`);
    // 2. An operator signs in to the codec endpoint once (an HttpOnly cookie for /codec).
    await page.goto(`${endpoints.api}/codec/session`);
    await page.fill('#token', config.CODEC_AUTH_TOKENS[0]!);
    await page.click('#sign-in');
    await page.waitForSelector('#signed-in', { timeout: 15_000 });
    // 3. The run, with its input decoded.
    say(`opening ${runUrl}`);
    await page.goto(runUrl);
    const pageSays = (text: string) => (globalThis as unknown as PageGlobals).document.body.innerText.includes(text);
    await page.waitForFunction(pageSays, '"schemaId"', { timeout: 60_000 }).catch(async () => {
      const text = (await page.locator('body').innerText()).slice(0, 400).replace(/\s+/g, ' ');
      throw new DemoError(`the run's decoded input did not show in 60 s; the page says: ${text}`);
    });
    await page.waitForLoadState('networkidle').catch(() => undefined);
    mkdirSync(dirname(args.out), { recursive: true });
    await page.screenshot({ path: args.out, fullPage: false });
    say(`saved ${relative(process.cwd(), args.out)}`);
  } finally {
    await browser.close();
    if (system.started) await system.stop();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      const message =
        err instanceof DemoError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`screenshot failed: ${message}\n`);
      process.exit(1);
    },
  );
}
