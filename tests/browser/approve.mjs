// The owner's approval page (`GET /approve/{id}`) in a real browser: Debian's Chromium,
// driven by playwright-core, with an injected EIP-1193 wallet (`window.ethereum`). The page
// shows a preview; a click connects the wallet, fetches the message to sign with a
// same-origin POST /approve/{id}/message, has the wallet sign it and submits it.
//
//   node tests/browser/approve.mjs SPEC.json
//
// SPEC: { daemon, signer, chromium?, screenshotDir?, phone?, scenarios: [{ name, tx | url, click, account, fields?, noWallet? }] }
//   daemon   the daemon's origin (http://127.0.0.1:PORT)
//   signer   a loopback URL that signs EIP-191 for the wallet's accounts: POST {data, account}
//            → {signature}; the test runs it (the keys stay in the Rust test, the daemon's
//            verification is the real one)
//   click    "approve" or "reject"
//   account  the account the wallet reports for eth_requestAccounts
//   phone    a phone: 390×844 viewport, touch, mobile; buttons are tapped, not clicked
//   url      open this URL (e.g. a notification's button) instead of /approve/{tx}
//   fields   the element ids to read (default: the approval page's)
//   noWallet inject no wallet (the page must say how to open it in a wallet app's browser)
//   solana   { publicKey }: inject a Phantom-style `window.solana` instead of window.ethereum;
//            its signMessage(bytes) has `signer` (the scenario's, else the spec's) sign the
//            hex of the bytes for that key: POST {data, account} → {signature} (hex)
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
  const context = await browser.newContext(
    spec.phone
      ? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true }
      : { viewport: { width: 900, height: 900 } },
  );
  const fields = sc.fields || FIELDS;
  try {
    // The wallet: every window.ethereum.request goes to Node, which answers like a wallet
    // holding `sc.account` and has the test's signer sign for it.
    await context.exposeFunction('__bursarWallet', async ({ method, params }) => {
      out.providerCalls.push({ method, params: params || [] });
      switch (method) {
        case 'solana_connect':
          return null;
        case 'eth_requestAccounts':
        case 'eth_accounts':
          return [sc.account.toLowerCase()];
        case 'eth_chainId':
          return '0x7a69';
        case 'solana_signMessage': {
          const [data] = params || [];
          const res = await fetch(sc.signer || spec.signer, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ data, account: sc.solana.publicKey }),
          });
          if (!res.ok) throw new Error(`signer: ${res.status} ${await res.text()}`);
          return (await res.json()).signature;
        }
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
    await context.addInitScript(({ noWallet, solana }) => {
      window.__bursarCsp = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__bursarCsp.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample });
      });
      if (noWallet) return;
      const wallet = window.__bursarWallet;
      if (solana) {
        // A Phantom-style provider: connect() → { publicKey }, signMessage(Uint8Array) →
        // { signature: Uint8Array, publicKey }.
        const publicKey = { toString: () => solana.publicKey, toBase58: () => solana.publicKey };
        const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
        const fromHex = (h) => Uint8Array.from(h.replace(/^0x/, '').match(/../g).map((x) => parseInt(x, 16)));
        const provider = {
          isPhantom: true,
          publicKey,
          connect: async () => {
            await wallet({ method: 'solana_connect', params: [] });
            return { publicKey };
          },
          signMessage: async (bytes, display) => {
            const sig = await wallet({ method: 'solana_signMessage', params: [toHex(bytes), display] });
            return { signature: fromHex(sig), publicKey };
          },
        };
        Object.defineProperty(window, 'solana', { value: provider, configurable: false, writable: false });
        return;
      }
      const ethereum = {
        isBursarTestWallet: true,
        request: ({ method, params }) => wallet({ method, params: params || [] }),
        on() {},
        removeListener() {},
      };
      Object.defineProperty(window, 'ethereum', { value: ethereum, configurable: false, writable: false });
    }, { noWallet: !!sc.noWallet, solana: sc.solana || null });
    const page = await context.newPage();
    page.on('console', (m) => out.console.push({ type: m.type(), text: m.text() }));
    page.on('pageerror', (e) => out.pageErrors.push(String(e && e.message ? e.message : e)));
    page.on('request', (r) => out.requests.push({ method: r.method(), url: r.url(), type: r.resourceType() }));
    page.on('requestfailed', (r) => out.failedRequests.push({ url: r.url(), error: r.failure() && r.failure().errorText }));

    const res = await page.goto(sc.url || `${spec.daemon}/approve/${sc.tx}`, { waitUntil: 'load' });
    out.status = res.status();
    out.headers = await res.allHeaders();
    out.html = await res.text();
    out.fields = await page.evaluate((ids) => Object.fromEntries(ids.map((id) => [id, document.getElementById(id)?.textContent ?? null])), fields);
    out.mainVisible = await page.locator('#main').isVisible();
    out.noWalletVisible = await page.locator('#nowallet').isVisible();
    out.noWalletText = await page.locator('#nowallet').textContent();
    const ACTIONS = '#buttons button, #freeze';
    out.buttons = await page.evaluate((sel) => Array.from(document.querySelectorAll(sel), (b) => b.id), ACTIONS);
    // The layout on this screen: the action buttons' boxes (tap targets), and whether the
    // page scrolls sideways (it must not).
    out.layout = await page.evaluate((sel) => ({
      innerWidth: window.innerWidth,
      scrollWidth: document.documentElement.scrollWidth,
      buttons: Array.from(document.querySelectorAll(sel), (b) => {
        const r = b.getBoundingClientRect();
        return { id: b.id, width: r.width, height: r.height, left: r.left, right: r.right };
      }),
    }), ACTIONS);

    const result = page.locator('#result');
    if (sc.click) {
      if (spec.phone) await page.tap(`#${sc.click}`);
      else await page.click(`#${sc.click}`);
      try {
        await result.filter({ hasText: FINAL }).waitFor({ timeout: 30_000 });
      } catch (e) {
        out.timedOut = true;
      }
    }
    out.result = await result.textContent();
    out.buttonsDisabled = await page.evaluate((sel) => Array.from(document.querySelectorAll(sel), (b) => b.disabled), ACTIONS);
    // After the click the page shows the message it fetched (and had signed), not the preview.
    out.fieldsAfter = await page.evaluate((ids) => Object.fromEntries(ids.map((id) => [id, document.getElementById(id)?.textContent ?? null])), fields);
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
