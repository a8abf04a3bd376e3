/**
 * Debian's Chromium, driven headless by playwright-core (no browser download): the Web UI test and
 * `npm run screenshot` launch it the same way.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The few browser globals the page scripts touch (the project compiles without the DOM lib). */
export interface PageGlobals {
  localStorage: { setItem(key: string, value: string): void };
  document: { body: { innerText: string } };
}
