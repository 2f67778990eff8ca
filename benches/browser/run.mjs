// Opens vpt lab pages in headless Chromium and prints what each replay left in window.vptResult.
//
//   node benches/browser/run.mjs http://127.0.0.1:PORT/?run=kernels [more URLs…]
//
// One JSON line per URL on stdout. Exit 0 when every page reported (whether kernels passed is the
// caller's call); 2 when Chromium cannot start or a page gives no result in time.
// CHROMIUM overrides the browser's path (default /usr/bin/chromium); TIMEOUT_S the wait per page.
//
// The same driver serves the browser build's pages (tests/browser.rs, tests/web.rs):
// - VPT_RESULT: the page's result to wait for (default vptResult; /train sets vptTrain, /check
//   vptCheck);
// - VPT_SCREENSHOT: where to save a screenshot of the (last) page once it reported;
// - a URL's fragment drives /train as a user would, never sent to the server:
//   #folder=DIR gives DIR to the folder input, #backbone=FILE picks a backbone file, then Train is
//   pressed; #task=FILE loads a task file; #image=FILE classifies an image. The result is then what
//   the page shows: {done, error, warnings, prediction, curves}.
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
// What a user does on /train, as the URL's fragment says; leaves window.vptTrain = what the page
// shows.
async function act(page, actions) {
  const settled = (selector) => page.waitForFunction((s) => document.querySelector('#error').textContent !== '' || document.querySelector(s), selector, { timeout, polling: 200 });
  await page.waitForFunction(() => document.querySelector('#recipe input') !== null, null, { timeout });
  if (actions.has('backbone')) {
    await page.locator('input[name=backbone][value=file]').check();
    await page.locator('#backbone-file').setInputFiles(actions.get('backbone'));
  }
  if (actions.has('folder')) {
    await page.locator('#folder').setInputFiles(actions.get('folder'));
    await settled('#data-summary:not(:empty)');
  }
  if (actions.has('folder') || actions.has('backbone')) {
    await page.locator('#train').click();
    await page.waitForFunction(() => !document.querySelector('#train').disabled && (document.querySelector('#error').textContent !== '' || !document.querySelector('#download').hidden), null, { timeout, polling: 500 });
  }
  for (const [action, input] of [['task', '#task-file'], ['image', '#image']]) {
    if (!actions.has(action)) continue;
    await page.evaluate(() => { document.querySelector('#prediction').textContent = ''; document.querySelector('#error').textContent = ''; });
    await page.locator(input).setInputFiles(actions.get(action));
    await settled('#prediction:not(:empty)');
  }
  await page.evaluate(() => {
    const text = (id) => document.querySelector(id).textContent || undefined;
    window.vptTrain = { done: !document.querySelector('#download').hidden, error: text('#error'), prediction: text('#prediction') };
  });
}

let status = 0;
for (const url of urls) {
  const page = await browser.newPage();
  const log = [];
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`page error: ${e.message}`));
  try {
    const wanted = process.env.VPT_RESULT || 'vptResult';
    const actions = new URLSearchParams(new URL(url).hash.slice(1));
    await page.goto(url);
    if ([...actions.keys()].length) await act(page, actions);
    await page.waitForFunction((name) => window[name] !== undefined, wanted, { timeout, polling: 500 });
    const result = await page.evaluate((name) => ({ ...window[name], curves: window.vptCurves, page_error: document.querySelector('#error')?.textContent, warnings: document.querySelector('#warnings')?.textContent }), wanted);
    if (process.env.VPT_SCREENSHOT) await page.screenshot({ path: process.env.VPT_SCREENSHOT, fullPage: true });
    console.log(JSON.stringify({ url, ...result, log }));
  } catch (e) {
    const shown = await page.locator('#status').textContent().catch(() => '');
    console.error(`${url}: no result (${e.message.split('\n')[0]}); page says: ${shown}\n${log.slice(-20).join('\n')}`);
    status = 2;
  }
  await page.close();
}
await browser.close();
process.exit(status);
