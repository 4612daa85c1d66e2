// Starting Debian's Chromium for the browser tests and the web bench,
// driven by puppeteer-core (pinned in package-lock.json; it downloads no
// browser of its own).
import puppeteer from 'puppeteer-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.TIMER_CHROMIUM || '/usr/bin/chromium';

export async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'timer-web-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: [
      // Chromium's sandbox cannot start as root (CI runs as root); the pages
      // it loads are this project's own, served on loopback.
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      // No connections of its own (updates, sync, Google's hosts): the
      // machine's network is closed, and the test must see only timerd.
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
      '--no-default-browser-check',
    ],
  });
  const close = async () => {
    await browser.close().catch(() => {});
    fs.rmSync(profile, {recursive: true, force: true});
  };
  return {browser, close};
}
