// Shared by the owner's pages (approve.html, panic.html), inlined into their nonce'd script.
// The wallet side: an EIP-1193 provider (`window.ethereum`, personal_sign of the exact text)
// or a Phantom-style Solana provider (`window.solana` / `window.phantom.solana`, signMessage
// of the exact text's UTF-8 bytes, Ed25519). No third party, no relay: the page talks to the
// wallet the browser injected and to this daemon only.
const $ = (id) => document.getElementById(id);
const text = (id, v) => { $(id).textContent = v == null ? "" : String(v); };
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function solanaProvider() {
  return (window.phantom && window.phantom.solana) || window.solana || null;
}

function hasWallet(kind) {
  return kind === "solana" ? !!solanaProvider() : !!window.ethereum;
}

// Says plainly when this browser has no wallet, and how to get one that does: open the link
// in the wallet app's own browser. Wallets may inject late; a later check hides the notice.
function watchWallet(kind) {
  const show = () => {
    const missing = !hasWallet(kind);
    $("nowallet").hidden = !missing;
    text("pageUrl", location.href);
  };
  show();
  window.addEventListener("ethereum#initialized", show, { once: true });
  setTimeout(show, 1500);
  const copy = $("copyLink");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      text("copyLink", "Link copied");
    } catch (e) {
      text("copyLink", "Select the link above and copy it");
    }
  });
}

async function connectEvm(owner) {
  if (!window.ethereum) throw new Error("no Ethereum wallet in this browser: open this link in your wallet app's browser");
  const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
  const account = accounts.find((a) => a.toLowerCase() === owner.toLowerCase());
  if (!account) throw new Error("the connected wallet is not the owner " + owner);
  return account;
}

async function signEvm(account, message) {
  const data = "0x" + hex(new TextEncoder().encode(message));
  return window.ethereum.request({ method: "personal_sign", params: [data, account] });
}

async function connectSolana(owner) {
  const provider = solanaProvider();
  if (!provider) throw new Error("no Solana wallet in this browser: open this link in your wallet app's browser");
  const res = await provider.connect();
  const key = (res && res.publicKey) || provider.publicKey;
  if (key && key.toString() !== owner) throw new Error("the connected wallet is not the owner " + owner);
  return provider;
}

async function signSolana(provider, message) {
  const signed = await provider.signMessage(new TextEncoder().encode(message), "utf8");
  return hex(signed.signature || signed);
}

async function connectWallet(kind, owner) {
  return kind === "solana" ? connectSolana(owner) : connectEvm(owner);
}

async function signWith(kind, wallet, message) {
  return kind === "solana" ? signSolana(wallet, message) : signEvm(wallet, message);
}

// POSTs the signed message (X-Owner-Message / X-Owner-Signature) to where the daemon said.
async function submitSigned(m, signature) {
  const res = await fetch(m.submitTo, {
    method: "POST",
    headers: { "X-Owner-Message": m.messageBase64, "X-Owner-Signature": signature },
  });
  const body = await res.json();
  return { ok: res.ok, status: res.status, body };
}

// The message to sign, with a fresh single-use nonce: asked for only now, by a same-origin
// POST (viewing a page takes no nonce).
async function fetchMessage(url) {
  const res = await fetch(url, { method: "POST" });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ? body.error.message : "HTTP " + res.status);
  return body;
}
