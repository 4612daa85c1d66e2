// The web view's jobs list with many jobs, in Debian's headless Chromium
// (docs/PERFORMANCE.md, "Web view"). Run by hand, after scripts/deps.sh and
// a build installed somewhere (scripts/run.sh install: ./_install):
//
//   node bench/web_list_bench.mjs [--prefix _install] [--jobs 1000] [--runs 5]
//   node bench/web_list_bench.mjs --url http://127.0.0.1:8080 --token TOKEN ...
//
// It starts its own timerd (loopback, a temporary data directory; or uses
// the one at --url, whose identity must have no jobs yet), creates
// --jobs noop jobs through the JSON API, signs the page in, then reloads
// #/jobs --runs times and prints, per run and as medians: the time from the
// start of navigation to the list rendered (a performance mark the page sets
// when the rows are in the DOM), and within it the ListJobs response (the
// API's share, the baseline) and the assets. Also the assets' total size.
import {spawn, execFileSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {launch} from '../tests/web/browser.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const prefix = path.resolve(opt('prefix', path.join(root, '_install')));
const nJobs = Number(opt('jobs', '1000'));
const runs = Number(opt('runs', '5'));
const timerd = path.join(prefix, 'bin/timerd');

let daemon = null;
let tmp = '';
let token = opt('token', '');
let url = opt('url', '');
if (!url) {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'timer-web-bench-'));
  const data = path.join(tmp, 'data');
  fs.writeFileSync(path.join(tmp, 'timerd.toml'), 'http_listen = "127.0.0.1:0"\n');
  token = execFileSync(timerd, ['token', 'issue', '--data-dir', data, '--identity',
    'bench@example.org']).toString().trim().split('\n').pop();
  daemon = spawn(timerd, ['--config', path.join(tmp, 'timerd.toml'), '--listen', '127.0.0.1:0',
    '--data-dir', data], {stdio: ['ignore', 'ignore', 'pipe']});
  url = await new Promise((resolve, reject) => {
    let log = '';
    daemon.stderr.on('data', (d) => {
      log += d;
      const m = /http: serving on (http:\/\/\S+)/.exec(log);
      if (m) resolve(m[1]);
    });
    daemon.on('exit', () => reject(new Error(`timerd exited:\n${log}`)));
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  const headers = {'Authorization': `Bearer ${token}`, 'Content-Type': 'application/json'};
  let made = 0;
  const worker = async () => {
    while (made < nJobs) {
      const i = made++;
      const res = await fetch(`${url}/v1/jobs`, {method: 'POST', headers, body: JSON.stringify({
        name: `bench job ${i}`, label: `nightly copy ${i}`,
        schedule: {interval_seconds: String(3600 + i), start: '2035-01-01T00:00:00Z'},
        action: {provider: 'noop', body: '{"delay_ms": 10}'},
      })});
      if (!res.ok) throw new Error(`create: ${res.status} ${await res.text()}`);
    }
  };
  await Promise.all(Array.from({length: 8}, worker));

  const {browser, close} = await launch();
  try {
    const page = await browser.newPage();
    await page.setViewport({width: 1280, height: 900});
    // Every load as a first visit: no asset from the browser's cache.
    await page.setCacheEnabled(false);
    await page.goto(`${url}/#/signin`);
    await page.waitForSelector('#token');
    await page.type('#token', token);
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector(`#view[data-rendered="${nJobs}"]`, {timeout: 60000});
    const rows = [];
    for (let r = 0; r < runs; r++) {
      await page.reload({waitUntil: 'load'});
      await page.waitForSelector(`#view[data-rendered="${nJobs}"]`, {timeout: 60000});
      rows.push(await page.evaluate(() => {
        const mark = performance.getEntriesByName('timer-jobs-rendered').pop();
        const res = performance.getEntriesByType('resource');
        const list = res.find((e) => e.name.includes('/v1/jobs?'));
        const assets = res.filter((e) => e.name.includes('/assets/'));
        const nav = performance.getEntriesByType('navigation')[0];
        return {
          rendered_ms: mark.startTime,
          list_request_ms: list ? list.responseEnd - list.startTime : -1,
          list_bytes: list ? list.encodedBodySize : -1,
          after_list_ms: list ? mark.startTime - list.responseEnd : -1,
          assets_done_ms: Math.max(nav.responseEnd, ...assets.map((e) => e.responseEnd)),
          asset_bytes: nav.decodedBodySize + assets.reduce((s, e) => s + e.decodedBodySize, 0),
        };
      }));
    }
    for (const row of rows) console.log(JSON.stringify(row));
    const m = (k) => Math.round(median(rows.map((x) => x[k])) * 10) / 10;
    console.log(`jobs ${nJobs}, runs ${runs}, medians: rendered ${m('rendered_ms')} ms after navigation start ` +
      `(ListJobs response ${m('list_request_ms')} ms for ${m('list_bytes')} bytes; ` +
      `from the response to the rows in the DOM ${m('after_list_ms')} ms; assets loaded at ${m('assets_done_ms')} ms); ` +
      `assets ${m('asset_bytes')} bytes`);
  } finally {
    await close();
  }
} finally {
  if (daemon) {
    const exited = new Promise((r) => daemon.on('exit', r));
    daemon.kill('SIGTERM');
    await exited;
  }
  if (tmp) fs.rmSync(tmp, {recursive: true, force: true});
}
