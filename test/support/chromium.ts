import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium: `.ci/run` installs it; browser downloads from elsewhere fail on this machine. */
export const CHROMIUM = '/usr/bin/chromium';

/** Whether the browser is there; a spec without it says what it skips (`skipped`) and skips it. */
export function hasChromium(skipped: string): boolean {
  const present = existsSync(CHROMIUM);
  if (!present) console.warn(`${skipped} SKIPPED, no ${CHROMIUM} (apt-get install chromium)`);
  return present;
}

/** A headless chromium with nothing of its own on the network (no updates, sync or QUIC). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
