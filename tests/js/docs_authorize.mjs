// Drives the server's Swagger UI (/docs) in headless Chromium the way a
// person would: once without credentials, once after Authorize with an API
// key, it expands a protected GET operation, clicks "Try it out" and
// "Execute", and reads the status code Swagger UI shows in its live
// response table.
//
// Not a `node --test` file (its name matches none of node's test globs):
// tests/docs_ui.rs runs it against a server it started, as
//
//   node tests/js/docs_authorize.mjs <base> <api-key> <chromium> [path] [scheme]
//
// <base> is the server's http://host:port, <path> the protected GET
// operation (default /keyed) and <scheme> the apiKey security scheme to
// authorize (default: the modal's only apiKey scheme). It prints one JSON
// object on stdout:
//
//   {"anonymous": {"status": 401, "header": null, "sent_key": false, "problems": [...]},
//    "authorized": {"status": 200, "header": "x-api-key", "sent_key": true, "problems": []},
//    "offsite": []}
//
// where `status` is the code shown in the live response table, `header`
// the key's header as the modal names it, `sent_key` whether the request
// the page made carried the key (in that header), `problems` the page's
// script errors and responses of 400 or more, and `offsite` every request
// the page tried to make outside <base> (all refused). Any failure
// exits 1 with a message on stderr saying which step failed.

import puppeteer from "puppeteer-core";

const [base, key, chromium, path = "/keyed", scheme = ""] = process.argv.slice(2);
if (!base || !key || !chromium) {
  console.error("usage: node docs_authorize.mjs <base> <api-key> <chromium> [path] [scheme]");
  process.exit(2);
}
const TIMEOUT = Number(process.env.DOCS_AUTHORIZE_TIMEOUT_MS || 60000);
const origin = new URL(base).origin;

let step = "launch chromium";
const fail = (e) => {
  console.error(`docs_authorize: ${step}: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
};

/** Runs `f` as the named step (so a failure says which one). */
async function at(name, f) {
  step = name;
  return await f();
}

/** Clicks the first element matching `selector` inside `root`. */
async function click(root, selector) {
  const el = await root.waitForSelector(selector, { visible: true, timeout: TIMEOUT });
  await el.click();
  return el;
}

/**
 * One pass over /docs in a fresh browser context: authorizes with `key`
 * first if given, then executes GET `path` and returns what it shows.
 */
async function run(browser, withKey, offsite) {
  const context = await browser.createBrowserContext();
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    // What went wrong on the page, for the report: script errors and
    // every response of 400 or more.
    const problems = [];
    page.on("pageerror", (e) => problems.push(String(e)));
    page.on("response", (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
    await page.setRequestInterception(true);
    page.on("request", (r) => {
      const u = r.url();
      if (u.startsWith("data:") || u.startsWith("blob:") || new URL(u).origin === origin) {
        r.continue();
      } else {
        offsite.push(u);
        r.abort();
      }
    });
    // The request Swagger UI makes for the operation, as the server saw it.
    const target = new URL(path, base).href;
    const sent = [];
    page.on("request", (r) => {
      if (r.url() === target && r.method() === "GET") sent.push(r.headers());
    });

    await at(`open ${base}/docs`, async () => {
      const r = await page.goto(`${base}/docs`, { waitUntil: "load" });
      if (!r || r.status() !== 200) throw new Error(`status ${r && r.status()}`);
      await page.waitForSelector(".opblock", { timeout: TIMEOUT });
    });

    let header = null;
    if (withKey) {
      await at("click Authorize", () => click(page, ".auth-wrapper .btn.authorize"));
      const found = await at("find the apiKey scheme in the Authorize modal", async () => {
        await page.waitForSelector(".modal-ux .auth-container", { visible: true });
        const all = await page.$$(".modal-ux .auth-container");
        const found = [];
        for (const c of all) {
          const title = await c.$eval("h4", (h) => h.textContent.replace(/\s+/g, " ").trim());
          if (title.includes("(apiKey)") && (!scheme || title.split(" ")[0] === scheme)) {
            found.push({ c, title });
          }
        }
        if (found.length !== 1) {
          throw new Error(`${found.length} apiKey schemes match ${JSON.stringify(scheme)} among ${all.length}`);
        }
        return found[0];
      });
      const { c: container, title } = found;
      header = await at("read the key's header name", () =>
        container.evaluate((c) => {
          // "Name: <code>X-Docs-Key</code>" in the scheme's description.
          const p = [...c.querySelectorAll("p")].find((p) => p.textContent.startsWith("Name:"));
          return p?.querySelector("code")?.textContent.trim().toLowerCase() || null;
        }),
      );
      if (!header) throw new Error("the apiKey scheme shows no header name");
      await at("type the key", async () => {
        const input = await container.waitForSelector("input", { visible: true });
        await input.type(key);
      });
      await at("click the modal's Authorize", () => click(container, "button.authorize"));
      // (React renders the container anew: find it again by its title.)
      await at("see the scheme authorized", () =>
        page.waitForFunction(
          (title) =>
            [...document.querySelectorAll(".modal-ux .auth-container")].some(
              (c) =>
                c.querySelector("h4")?.textContent.replace(/\s+/g, " ").trim() === title &&
                c.querySelector("h6")?.textContent.trim() === "Authorized",
            ),
          { timeout: TIMEOUT },
          title,
        ),
      );
      await at("click Close", () => click(page, ".modal-ux .btn-done"));
      await at("see the modal closed", () =>
        page.waitForSelector(".modal-ux", { hidden: true, timeout: TIMEOUT }),
      );
    }

    const op = await at(`find GET ${path}`, async () => {
      const handle = await page.waitForFunction(
        (p) => {
          for (const s of document.querySelectorAll(".opblock.opblock-get .opblock-summary-path")) {
            if (s.getAttribute("data-path") === p) return s.closest(".opblock");
          }
          return null;
        },
        { timeout: TIMEOUT },
        path,
      );
      return handle.asElement();
    });
    await at(`expand GET ${path}`, async () => {
      const control = (await op.$(".opblock-summary-control")) || (await op.$(".opblock-summary"));
      await control.click();
    });
    await at('click "Try it out"', () => click(op, ".try-out__btn"));
    await at('click "Execute"', () => click(op, ".btn.execute"));
    const shown = await at("read the live response's status", async () => {
      const cell = await op.waitForSelector(".live-responses-table .response .response-col_status", {
        visible: true,
        timeout: TIMEOUT,
      });
      const text = (await cell.evaluate((c) => c.textContent)).trim();
      const m = text.match(/^\d{3}/);
      if (!m) {
        const all = await op.$eval(".live-responses-table", (t) => t.textContent);
        throw new Error(`no status code in the live response: ${JSON.stringify(all)}`);
      }
      return Number(m[0]);
    });
    if (sent.length !== 1) {
      throw new Error(`the page made ${sent.length} requests to ${target}`);
    }
    return {
      status: shown,
      header,
      sent_key: header ? sent[0][header] === key : Object.values(sent[0]).includes(key),
      problems,
    };
  } finally {
    await context.close();
  }
}

try {
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
    protocolTimeout: TIMEOUT * 2,
  });
  try {
    const offsite = [];
    const anonymous = await run(browser, false, offsite);
    const authorized = await run(browser, true, offsite);
    step = "report";
    process.stdout.write(JSON.stringify({ anonymous, authorized, offsite }) + "\n");
  } finally {
    await browser.close();
  }
} catch (e) {
  fail(e);
}
