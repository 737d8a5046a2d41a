/**
 * The console's static files: one stylesheet, one script and an icon, served from ./assets beside this module
 * (the sources under tsx, dist/connector/console/assets once `npm run build` copied them there), never
 * from a CDN. Read once when the console starts; a missing file is logged and answered 404 rather
 * than stopping the connector: every page still works without it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ConsoleLogger } from './source.js';

const contentTypes: Readonly<Record<string, string>> = {
  'console.css': 'text/css; charset=utf-8',
  'live.js': 'text/javascript; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

export interface ConsoleAsset {
  readonly contentType: string;
  readonly body: Buffer;
}

export const assetDirectory = fileURLToPath(new URL('./assets/', import.meta.url));

export function loadAssets(logger: ConsoleLogger): ReadonlyMap<string, ConsoleAsset> {
  const assets = new Map<string, ConsoleAsset>();
  for (const [name, contentType] of Object.entries(contentTypes)) {
    try {
      assets.set(name, { contentType, body: readFileSync(new URL(`./assets/${name}`, import.meta.url)) });
    } catch (error) {
      logger.error({ err: error, asset: name }, 'console asset missing: run `npm run build` again');
    }
  }
  return assets;
}
