// The web view in a real browser (Debian's Chromium, headless) against a
// running timerd: run by tests/e2e/web_e2e_test.cc, which starts timerd,
// issues the tokens, and asserts on the JSON this prints (one line):
//   {"checks": [{"name", "ok", "detail"}...], "console": [...], "axe": {...}}
// Environment: TIMER_WEB_URL (http://127.0.0.1:PORT), TIMER_WEB_TOKEN and
// TIMER_WEB_IDENTITY (the user), TIMER_WEB_OTHER_TOKEN (another identity),
// TIMER_WEB_SCREENSHOT (optional: where to write a PNG of the job page).
import fs from 'node:fs';
import {createRequire} from 'node:module';
import {launch} from './browser.mjs';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const URL_ = process.env.TIMER_WEB_URL;
const TOKEN = process.env.TIMER_WEB_TOKEN;
const IDENTITY = process.env.TIMER_WEB_IDENTITY;
const OTHER = process.env.TIMER_WEB_OTHER_TOKEN;
const SHOT = process.env.TIMER_WEB_SCREENSHOT || '';
const HOSTILE = '<img src=x onerror=alert(1)>';
const WAIT = {timeout: 30000};

const out = {checks: [], console: [], axe: {}, dialogs: []};
const check = (name, ok, detail = '') => out.checks.push({name, ok: !!ok, detail: String(detail)});

// Network answers the current step expects (their console lines are not
// errors of the view): e.g. 400 while a field error is provoked.
let expected = [];
let currentPage = null;
const step = async (name, fn, allow = []) => {
  expected = allow;
  try {
    await fn();
  } catch (e) {
    const where = currentPage ? await currentPage.evaluate(() =>
      `${location.hash} | ${document.querySelector('main').innerText.slice(0, 600)}`).catch(() => '') : '';
    check(name, false, `threw: ${e && e.stack || e}\npage: ${where}`);
    throw e;
  } finally {
    expected = [];
  }
};

async function axe(page, name) {
  await page.evaluate(AXE);
  const r = await page.evaluate(async () => {
    const res = await window.axe.run(document, {resultTypes: ['violations']});
    return res.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' '))}));
  });
  out.axe[name] = r;
  const bad = r.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(`axe: no serious or critical violation on ${name}`, bad.length === 0, JSON.stringify(bad));
}

async function api(method, path, token, body) {
  const res = await fetch(URL_ + path, {
    method,
    headers: {'Authorization': `Bearer ${token}`, 'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return {status: res.status, json: await res.json().catch(() => null)};
}

const text = (page, sel) => page.$eval(sel, (el) => el.textContent);

async function main() {
  // Headers of the view, and an unknown asset.
  let res = await fetch(`${URL_}/`);
  const csp = res.headers.get('content-security-policy') || '';
  check('GET / is the view, public, with a strict CSP',
    res.status === 200 && /text\/html/.test(res.headers.get('content-type')) &&
    csp.includes("default-src 'self'") && csp.includes("script-src 'self'") &&
    csp.includes("frame-ancestors 'none'") && csp.includes("connect-src 'self'") &&
    !csp.includes('unsafe-inline') &&
    res.headers.get('x-content-type-options') === 'nosniff' &&
    res.headers.get('referrer-policy') === 'no-referrer' && !!res.headers.get('etag'),
  `${res.status} ${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  res = await fetch(`${URL_}/assets/app.js`, {headers: {'If-None-Match': res.headers.get('etag')}});
  check('an asset has its own ETag and type', res.status === 200 &&
    /^text\/javascript/.test(res.headers.get('content-type')), `${res.status} ${res.headers.get('content-type')}`);
  const etag = res.headers.get('etag');
  res = await fetch(`${URL_}/assets/app.js`, {headers: {'If-None-Match': etag}});
  check('a revalidation with the ETag is 304', res.status === 304, res.status);
  res = await fetch(`${URL_}/assets/nope.js`);
  check('an unknown asset is 404, with the same headers', res.status === 404 &&
    (res.headers.get('content-security-policy') || '').includes("frame-ancestors 'none'"), res.status);

  // Another identity's job, for the "not found" check.
  const other = await api('POST', '/v1/jobs', OTHER, {name: 'not yours',
    schedule: {interval_seconds: '3600', start: '2035-01-01T00:00:00Z'},
    action: {provider: 'noop', body: '{}'}});
  const otherId = other.json && other.json.job_id;
  check('setup: another identity has a job', other.status === 200 && otherId, JSON.stringify(other));

  const {browser, close} = await launch();
  try {
    const page = await browser.newPage();
    currentPage = page;
    page.setDefaultTimeout(30000);
    await page.setViewport({width: 1280, height: 900});
    page.on('console', (m) => {
      if (m.type() !== 'error' && m.type() !== 'warn' && m.type() !== 'warning') return;
      const t = m.text();
      const allowed = m.type() === 'error' && expected.some((code) =>
        t.includes(`status of ${code}`));
      out.console.push({type: m.type(), text: t, allowed, url: page.url()});
    });
    page.on('pageerror', (e) => out.console.push({type: 'pageerror', text: String(e), allowed: false}));
    page.on('dialog', async (d) => {
      out.dialogs.push(d.message());
      await d.dismiss();
    });

    await step('a refused token', async () => {
      await page.goto(`${URL_}/`, {waitUntil: 'load'});
      await page.waitForSelector('#token');
      await axe(page, 'sign-in');
      await page.type('#token', 'not-a-token');
      await page.click('form.signin button[type=submit]');
      await page.waitForSelector('#token-error');
      const msg = await text(page, '#token-error');
      const stored = await page.evaluate(() => sessionStorage.getItem('timer.token'));
      check('sign in: a refused token is said so, and not kept', /refused/.test(msg) && stored === null, msg);
    }, [401]);

    await step('sign in', async () => {
      await page.waitForSelector('#token');
      await page.$eval('#token', (el) => { el.value = ''; });
      await page.type('#token', TOKEN);
      await page.click('form.signin button[type=submit]');
      await page.waitForFunction((id) => {
        const el = document.querySelector('#who .identity');
        return el && el.textContent === id;
      }, WAIT, IDENTITY);
      await page.waitForSelector('#view[data-rendered]');
      const stored = await page.evaluate(() => sessionStorage.getItem('timer.token'));
      const cookies = await page.cookies();
      check('sign in: identity shown, token in sessionStorage only, no cookie',
        stored === TOKEN && cookies.length === 0, `cookies ${cookies.length}`);
      await page.evaluate(() => { window.__noReload = true; });
    });

    await step('a server error is shown beside its field', async () => {
      await page.goto(`${URL_}/#/new`);
      await page.waitForSelector('#f-interval');
      await axe(page, 'new job');
      await page.$eval('#f-interval', (el) => { el.value = '0'; });
      await page.type('#f-name', 'bad interval');
      await page.click('#f-submit');
      await page.waitForSelector('#f-interval-err:not([hidden])');
      const msg = await text(page, '#f-interval-err');
      const invalid = await page.$eval('#f-interval', (el) => el.getAttribute('aria-invalid'));
      const beside = await page.$eval('#f-interval-err', (el) =>
        el.closest('.field').querySelector('#f-interval') !== null);
      check('field error: interval_seconds named beside its input',
        msg.includes('schedule.interval_seconds') && invalid === 'true' && beside, msg);
      await axe(page, 'new job with a field error');
    }, [400]);

    let jobId = '';
    await step('create a job through the form', async () => {
      await page.$eval('#f-name', (el) => { el.value = ''; });
      await page.type('#f-name', HOSTILE);
      await page.$eval('#f-interval', (el) => { el.value = '1'; });
      await page.select('#f-unit', '3600');
      // Starts a few seconds from now, so the page is watching when it runs.
      await page.$eval('#f-start', (el) => {
        const d = new Date(Date.now() + 6000);
        const p = (n) => String(n).padStart(2, '0');
        el.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
      });
      await page.type('[data-field="action.body.delay_ms"]', '300');
      await page.click('#f-submit');
      await page.waitForFunction(() => /^#\/jobs\/[0-9a-f-]{36}$/.test(location.hash), WAIT);
      jobId = (await page.evaluate(() => location.hash)).split('/')[2];
      await page.waitForSelector('#live-state[data-state=live]');
      const got = await api('GET', `/v1/jobs/${jobId}`, TOKEN);
      const body = got.json && JSON.parse(got.json.action.body);
      check('create: the job exists with the form\'s values', got.status === 200 &&
        got.json.name === HOSTILE && got.json.schedule.interval_seconds === '3600' &&
        body.delay_ms === 300, JSON.stringify(got.json && got.json.schedule));
    });

    await step('the hostile name renders as text', async () => {
      const h1 = await text(page, 'main h1');
      const imgs = await page.$$eval('main img', (l) => l.length);
      check('hostile name: shown as text, no element made of it, no dialog',
        h1.includes(HOSTILE) && imgs === 0 && out.dialogs.length === 0, `${h1} imgs=${imgs}`);
    });

    await step('the first run appears in the live feed', async () => {
      await page.waitForSelector('#feed li[data-type=RUN_STARTED]', WAIT);
      await page.waitForSelector('#feed li[data-type=RUN_FINISHED]', WAIT);
      const t = await text(page, '#feed li[data-type=RUN_FINISHED]');
      await page.waitForFunction(() => document.querySelector('#results tr[data-run="1"]'), WAIT);
      const noReload = await page.evaluate(() => window.__noReload === true);
      check('live feed: run #1 started and finished, no reload', noReload && /run #1 SUCCEEDED/.test(t), t);
    });

    await step('the feed resumes after a dropped connection', async () => {
      await page.evaluate(() => window.__timerLive.drop());
      await page.click('#act-run');
      await page.waitForFunction(() => [...document.querySelectorAll('#feed li[data-type=RUN_FINISHED]')]
        .some((li) => li.textContent.includes('run #2 SUCCEEDED')), WAIT);
      const starts = await page.$$eval('#feed li[data-type=RUN_STARTED]', (l) => l.map((x) => x.textContent));
      const ones = starts.filter((s) => s.includes('run #1 ')).length;
      check('live feed: resumed with Last-Event-ID, run #2 seen, run #1 not repeated',
        ones === 1, JSON.stringify(starts));
    });

    await step('pause', async () => {
      await page.click('#act-pause');
      await page.waitForFunction(() => {
        const dd = document.querySelector('dd[data-fact=Status]');
        return dd && dd.textContent.startsWith('PAUSED');
      }, WAIT);
      await page.waitForSelector('#feed li[data-type=PAUSED]', WAIT);
      await page.waitForSelector('#act-resume');
      check('pause: the status shows PAUSED and the feed says so', true);
      await axe(page, 'job');
      if (SHOT) {
        await page.evaluate(() => {
          document.activeElement && document.activeElement.blur();
          document.getElementById('toast').classList.remove('shown');
        });
        await new Promise((r) => setTimeout(r, 400));  // The toast's fade (0.2 s) to end.
        await page.screenshot({path: SHOT, fullPage: true});
      }
    });

    await step('phone width', async () => {
      await page.setViewport({width: 375, height: 800, isMobile: false});
      await new Promise((r) => setTimeout(r, 100));  // A layout pass at the new width.
      const w = await page.evaluate(() => document.documentElement.scrollWidth);
      check('phone width: the job page fits 375 px', w <= 376, w);
      await page.setViewport({width: 1280, height: 900});
    });

    await step('edit', async () => {
      await page.goto(`${URL_}/#/jobs/${jobId}/edit`);
      await page.waitForSelector('#f-name');
      await axe(page, 'edit job');
      await page.$eval('#f-stop-runs', (el) => { el.value = '5'; });
      await page.click('#f-submit');
      await page.waitForFunction((id) => location.hash === `#/jobs/${id}`, WAIT, jobId);
      const got = await api('GET', `/v1/jobs/${jobId}`, TOKEN);
      check('edit: PATCH with update_mask changed the stop condition, kept the name',
        got.json.schedule.stop_after_runs === '5' && got.json.name === HOSTILE, JSON.stringify(got.json.schedule));
    });

    await step('another identity\'s job is not found', async () => {
      await page.goto(`${URL_}/#/jobs/${otherId}`);
      await page.waitForFunction(() => {
        const h = document.querySelector('main h1');
        return h && h.textContent === 'Job not found';
      }, WAIT);
      const shown = await text(page, 'main');
      check('isolation: another identity\'s job id shows "not found"',
        !shown.includes('not yours'), shown.slice(0, 200));
    }, [404]);

    await step('jobs list', async () => {
      await page.goto(`${URL_}/#/jobs`);
      await page.waitForSelector('#view[data-rendered]');
      const names = await page.$$eval('table.jobs tbody a', (l) => l.map((a) => a.textContent));
      check('jobs list: the job is listed by its name, as text, and not the other identity\'s',
        names.includes(HOSTILE) && !names.includes('not yours'), JSON.stringify(names));
      await axe(page, 'jobs');
      const statuses = async () => page.$$eval('table.jobs tbody tr td:nth-child(2)', (l) => l.map((td) => td.textContent));
      await page.select('#f-status', 'PAUSED');
      const paused = await statuses();
      await page.select('#f-status', 'LOADED');
      const loaded = await statuses();
      await page.select('#f-status', '');
      await page.type('#f-name', 'no such name');
      const none = await page.$eval('#view', (m) => m.dataset.rendered);
      check('jobs list: filters by status and by name',
        paused.length >= 1 && paused.every((x) => x === 'PAUSED') && loaded.every((x) => x === 'LOADED') &&
        none === '0', JSON.stringify({paused, loaded, none}));
    });

    await step('providers', async () => {
      await page.goto(`${URL_}/#/providers`);
      await page.waitForSelector('.cards');
      await axe(page, 'providers');
      await page.goto(`${URL_}/#/providers/transfer`);
      await page.waitForFunction(() => document.querySelector('main pre'));
      await axe(page, 'provider transfer');
    });

    await step('delete, after a confirmation', async () => {
      await page.goto(`${URL_}/#/jobs/${jobId}`);
      await page.waitForSelector('#act-delete');
      await page.click('#act-delete');
      await page.waitForSelector('dialog.confirm[open]');
      await axe(page, 'delete confirmation');
      await page.keyboard.press('Escape');  // Cancels.
      await page.waitForFunction(() => !document.querySelector('dialog.confirm'));
      const kept = await api('GET', `/v1/jobs/${jobId}`, TOKEN);
      await page.click('#act-delete');
      await page.waitForSelector('dialog.confirm[open]');
      await page.click('dialog.confirm button.danger');
      await page.waitForFunction(() => location.hash === '#/jobs', WAIT);
      const gone = await api('GET', `/v1/jobs/${jobId}`, TOKEN);
      check('delete: Escape cancels, confirming deletes', kept.status === 200 && gone.status === 404,
        `${kept.status} ${gone.status}`);
    });

    await step('keyboard: sign out from the keyboard', async () => {
      await page.goto(`${URL_}/#/jobs`);
      await page.waitForSelector('#view[data-rendered]');
      await page.focus('#who button');
      await page.keyboard.press('Enter');
      await page.waitForSelector('#token');
      const stored = await page.evaluate(() => sessionStorage.getItem('timer.token'));
      check('sign out: the token is forgotten', stored === null, stored);
    });
  } catch {
    // Recorded by step(); the rest did not run.
  } finally {
    await close();
  }
  const errors = out.console.filter((c) => !c.allowed);
  check('no console errors or warnings on any page', errors.length === 0, JSON.stringify(errors));
  check('no alert or other dialog fired', out.dialogs.length === 0, JSON.stringify(out.dialogs));
}

main().then(() => {
  process.stdout.write(`${JSON.stringify(out)}\n`);
}, (e) => {
  check('the browser test ran', false, e && e.stack || e);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exitCode = 1;
});
