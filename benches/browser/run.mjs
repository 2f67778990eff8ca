// Opens vpt lab pages in headless Chromium and prints what each replay left in window.vptResult.
//
//   node benches/browser/run.mjs http://127.0.0.1:PORT/?run=kernels [more URLs…]
//
// One JSON line per URL on stdout. Exit 0 when every page reported (whether kernels passed is the
// caller's call); 2 when Chromium cannot start or a page gives no result in time.
// CHROMIUM overrides the browser's path (default /usr/bin/chromium); TIMEOUT_S the wait per page.
import { chromium } from 'playwright-core';

const urls = process.argv.slice(2);
if (!urls.length) {
  console.error('usage: node run.mjs URL [URL…]   (URLs that `vpt lab` printed, with ?run=NAME)');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const timeout = 1000 * Number(process.env.TIMEOUT_S || 600);
// WebGPU in headless Chromium: its built-in SwiftShader adapter where there is no GPU. There is
// no network here, so nothing may try to reach one.
const args = [
  '--enable-unsafe-webgpu',
  '--enable-webgpu-developer-features', // timestamps at full resolution
  '--use-webgpu-adapter=swiftshader',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];
if (process.env.VPT_LAB_GPU) args.splice(args.indexOf('--use-webgpu-adapter=swiftshader'), 1); // a real GPU's adapter instead

let browser;
try {
  browser = await chromium.launch({ executablePath, args, headless: true });
} catch (e) {
  console.error(`cannot start Chromium at ${executablePath}: ${e.message.split('\n')[0]}\n` +
    'install it (Debian: apt-get install chromium) and the driver (npm ci --prefix benches/browser), or set CHROMIUM to its path');
  process.exit(2);
}
let status = 0;
for (const url of urls) {
  const page = await browser.newPage();
  const log = [];
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`page error: ${e.message}`));
  try {
    await page.goto(url);
    await page.waitForFunction(() => window.vptResult !== undefined, null, { timeout, polling: 500 });
    const result = await page.evaluate(() => window.vptResult);
    console.log(JSON.stringify({ url, ...result }));
  } catch (e) {
    const shown = await page.locator('#status').textContent().catch(() => '');
    console.error(`${url}: no result (${e.message.split('\n')[0]}); page says: ${shown}\n${log.slice(-20).join('\n')}`);
    status = 2;
  }
  await page.close();
}
await browser.close();
process.exit(status);
