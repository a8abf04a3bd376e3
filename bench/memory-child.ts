// Runs one 25 MB encrypt or decrypt and prints {baseline, peak, itemBytes} (bytes of RSS).
import { randomFillSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eciesDecrypt, eciesEncrypt, MAX_ITEM_BYTES } from '../src/crypto/ecies';
import { assertCurve, generateKeyPair, parsePrivateKey, parsePublicKey } from '../src/crypto/keys';

const [curveArg = '', op = 'encrypt', dir = '.'] = process.argv.slice(2);
const curve = assertCurve(curveArg);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const itemBytes = MAX_ITEM_BYTES;

// Keys are fixed per curve across the two runs so the decrypt child can open the encrypt child's output.
const keyFile = join(dir, `${curve}.key`);
let pair: { publicKey: string; privateKey: string };
try {
  pair = JSON.parse(readFileSync(keyFile, 'utf8')) as typeof pair;
} catch {
  const fresh = generateKeyPair(curve);
  pair = { publicKey: fresh.publicKey.toString('hex'), privateKey: fresh.privateKey.toString('hex') };
  writeFileSync(keyFile, JSON.stringify(pair));
}
const publicKey = parsePublicKey(pair.publicKey, curve);
const privateKey = parsePrivateKey(pair.privateKey, curve);
eciesDecrypt(privateKey, eciesEncrypt(publicKey, Buffer.alloc(1024))); // warm up every code path
gc();

let peak = 0;
const sample = () => (peak = Math.max(peak, process.memoryUsage.rss()));
const timer = setInterval(sample, 1);
const baseline = process.memoryUsage.rss();
const pkgFile = join(dir, `${curve}.pkg`);

if (op === 'encrypt') {
  const item = randomFillSync(Buffer.allocUnsafe(itemBytes));
  sample();
  const pkg = eciesEncrypt(publicKey, item);
  sample();
  writeFileSync(pkgFile, pkg);
} else {
  const pkg = readFileSync(pkgFile);
  sample();
  const item = eciesDecrypt(privateKey, pkg);
  sample();
  if (item.length !== itemBytes) throw new Error('decrypted length mismatch');
}
clearInterval(timer);
peak = Math.max(peak, process.resourceUsage().maxRSS * 1024);
process.stdout.write(JSON.stringify({ baseline, peak, itemBytes }));
