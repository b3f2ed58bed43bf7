// The owner's approval page (`GET /approve/{id}`) in a real browser: Debian's Chromium,
// driven by playwright-core, with an injected EIP-1193 wallet (`window.ethereum`). The page
// shows a preview; a click connects the wallet, fetches the message to sign with a
// same-origin POST /approve/{id}/message, has the wallet sign it and submits it.
//
//   node tests/browser/approve.mjs SPEC.json
//
// SPEC: { daemon, signer, chromium?, screenshotDir?, scenarios: [{ name, tx, click, account }] }
//   daemon   the daemon's origin (http://127.0.0.1:PORT)
//   signer   a loopback URL that signs EIP-191 for the wallet's accounts: POST {data, account}
//            → {signature}; the test runs it (the keys stay in the Rust test, the daemon's
//            verification is the real one)
//   click    "approve" or "reject"
//   account  the account the wallet reports for eth_requestAccounts
//
// Prints one JSON line on stdout (what the browser saw, per scenario) for the test to assert
// on; progress and screenshot paths go to stderr. Exits non-zero only when the browser itself
// could not be driven.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** playwright-core from NODE_PATH, or from .tools/playwright where scripts/setup puts it. */
function playwright() {
  const paths = [...(process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean), path.join(repo, '.tools/playwright/node_modules')];
  try {
    return require(require.resolve('playwright-core', { paths }));
  } catch (e) {
    throw new Error(`playwright-core not found in ${paths.join(', ')}: run scripts/setup (${e.message})`);
  }
}

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const FIELDS = ['amount', 'symbol', 'to', 'asset', 'chain', 'chainId', 'from', 'baseUnits', 'reasons', 'owner', 'expires', 'tx', 'digest', 'message', 'error'];
const FINAL = /^(Done|Refused|Not sent):/;

async function scenario(browser, spec, sc, shots) {
  const started = Date.now();
  const out = { name: sc.name, tx: sc.tx, console: [], pageErrors: [], requests: [], failedRequests: [], providerCalls: [], cspViolations: [] };
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  try {
    // The wallet: every window.ethereum.request goes to Node, which answers like a wallet
    // holding `sc.account` and has the test's signer sign for it.
    await context.exposeFunction('__bursarWallet', async ({ method, params }) => {
      out.providerCalls.push({ method, params: params || [] });
      switch (method) {
        case 'eth_requestAccounts':
        case 'eth_accounts':
          return [sc.account.toLowerCase()];
        case 'eth_chainId':
          return '0x7a69';
        case 'personal_sign': {
          const [data, account] = params || [];
          if (typeof account !== 'string' || account.toLowerCase() !== sc.account.toLowerCase()) {
            throw new Error(`personal_sign for an account this wallet does not hold: ${account}`);
          }
          const res = await fetch(spec.signer, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ data, account }),
          });
          if (!res.ok) throw new Error(`signer: ${res.status} ${await res.text()}`);
          return (await res.json()).signature;
        }
        default:
          throw new Error(`unsupported method ${method}`);
      }
    });
    await context.addInitScript(() => {
      window.__bursarCsp = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__bursarCsp.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample });
      });
      const wallet = window.__bursarWallet;
      const ethereum = {
        isBursarTestWallet: true,
        request: ({ method, params }) => wallet({ method, params: params || [] }),
        on() {},
        removeListener() {},
      };
      Object.defineProperty(window, 'ethereum', { value: ethereum, configurable: false, writable: false });
    });
    const page = await context.newPage();
    page.on('console', (m) => out.console.push({ type: m.type(), text: m.text() }));
    page.on('pageerror', (e) => out.pageErrors.push(String(e && e.message ? e.message : e)));
    page.on('request', (r) => out.requests.push({ method: r.method(), url: r.url(), type: r.resourceType() }));
    page.on('requestfailed', (r) => out.failedRequests.push({ url: r.url(), error: r.failure() && r.failure().errorText }));

    const res = await page.goto(`${spec.daemon}/approve/${sc.tx}`, { waitUntil: 'load' });
    out.status = res.status();
    out.headers = await res.allHeaders();
    out.html = await res.text();
    out.fields = await page.evaluate((ids) => Object.fromEntries(ids.map((id) => [id, document.getElementById(id)?.textContent ?? null])), FIELDS);
    out.mainVisible = await page.locator('#main').isVisible();
    out.buttons = await page.evaluate(() => Array.from(document.querySelectorAll('button'), (b) => b.id));

    await page.click(`#${sc.click}`);
    const result = page.locator('#result');
    try {
      await result.filter({ hasText: FINAL }).waitFor({ timeout: 30_000 });
    } catch (e) {
      out.timedOut = true;
    }
    out.result = await result.textContent();
    out.buttonsDisabled = await page.evaluate(() => Array.from(document.querySelectorAll('button'), (b) => b.disabled));
    // After the click the page shows the message it fetched (and had signed), not the preview.
    out.fieldsAfter = await page.evaluate((ids) => Object.fromEntries(ids.map((id) => [id, document.getElementById(id)?.textContent ?? null])), FIELDS);
    // Let anything the click might still send show up in the request log.
    await page.waitForTimeout(200);
    out.cspViolations = await page.evaluate(() => window.__bursarCsp);
    out.screenshot = path.join(shots, `${sc.name}.png`);
    await page.screenshot({ path: out.screenshot, fullPage: true });
    process.stderr.write(`approve.mjs: ${sc.name}: ${out.result} — screenshot: ${out.screenshot}\n`);
  } finally {
    await context.close();
  }
  out.ms = Date.now() - started;
  return out;
}

async function main() {
  const specPath = process.argv[2];
  if (!specPath) throw new Error('usage: node tests/browser/approve.mjs SPEC.json');
  const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
  const executablePath = spec.chromium || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) throw new Error(`${executablePath} is missing: run scripts/setup (installs Debian's chromium)`);
  const shots = spec.screenshotDir || fs.mkdtempSync(path.join(os.tmpdir(), 'bursar-approve-'));
  fs.mkdirSync(shots, { recursive: true });

  const { chromium } = playwright();
  const started = Date.now();
  const browser = await chromium.launch({ executablePath, headless: true, args: FLAGS, timeout: 60_000 });
  const summary = { browser: browser.version(), launchMs: Date.now() - started, screenshotDir: shots, scenarios: [] };
  try {
    for (const sc of spec.scenarios) summary.scenarios.push(await scenario(browser, spec, sc, shots));
  } finally {
    await browser.close();
  }
  summary.totalMs = Date.now() - started;
  fs.writeFileSync(path.join(shots, 'summary.json'), JSON.stringify(summary, null, 2));
  process.stdout.write(JSON.stringify(summary) + '\n');
}

main().catch((e) => {
  process.stderr.write(`approve.mjs: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
